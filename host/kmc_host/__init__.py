"""KMC Sense's host side: the ward's gateway, store and screen, and what they share.

The data path, one subpackage per stage (docs/architecture.md draws it):

- `protocol`: the strap's BLE packets, gateway side (docs/protocol.md; `decode_measurement`,
  `decode_status`, `decode_response`, the command encoders, UUIDs and flag bits)
- `ble`: bleak backends on bumble (`BumbleBleakClient`, `BumbleBleakScanner`,
  `open_hci_central`) and the one BLE error told apart (`LinkSecurityError`)
- `gateway`: straps over BLE -> live detection -> MQTT (`Gateway`, `StrapLink`; `kmc gateway`)
- `detect`: the KMC detector shared with the offline tools (`StrapDetector`, `DetectorConfig`)
- `sink`: MQTT -> InfluxDB (`Sink`; `kmc sink`)
- `ward`: the nurses' screen (`WardModel`, `serve_ward`; `kmc ward`)

Shared by all: `samples` (`Samples`, the samples table as numpy columns), `clinical` (alert
kinds, their order, the WHO bands), `errors` (`KmcError` and its kinds, `describe`, `doing`),
`shutdown` (`StopSignals`), `tomlconf` (the TOML files' checked keys and secrets), `deploy`
(`kmc firmware`), `cli` (the `kmc` command and its layers).
"""

__version__ = "0.1.0"
