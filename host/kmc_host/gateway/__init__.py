"""The gateway (`kmc gateway`): a ward's straps over BLE -> live detection -> MQTT.

Read top-down:

- `config`: the gateway's TOML file, validated (`GatewayConfig`, `StrapEntry`, `load_config`)
- `link`: one strap over bleak (`StrapLink`: find, connect securely, resume from the cursor,
  decode, hand each batch on before the cursor moves), its state on disk (`CursorStore`,
  `AddressBook`) and the bleak backends it runs on (`BleAccess`)
- `service`: `Gateway`, per strap a link and an incremental detector; publishes through the
  MQTT contract (`kmc_host.mqtt`)
- `silence`: `SilenceBook`, open `signal_lost` episodes and last arrivals across restarts
- `jsonfile`: the one reader and atomic writer of the gateway's small state files
"""
