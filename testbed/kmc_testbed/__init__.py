"""The testbed: what emulates the world for `kmc demo` and the tests. Not the product.

KMC Sense's product is `kmc_host` (gateway, sink, ward screen) and `kmc_analysis` (the
researchers' tools); neither imports this package. It ships beside them because the README's
main job, `kmc demo`, runs a whole ward on it. bleak's own tests are the model: bumble
peripherals as fixtures, not product code.

- `firmware`: the strap firmware's modules in CPython, loaded under `kmc_firmware.` only
  (`load_firmware`, `Firmware`), with MicroPython's `micropython` and `bluetooth` stood in
- `bluetooth`: MicroPython's `bluetooth.BLE` on a bumble device (`BumbleBLE`)
- `strap`: an emulated strap running that firmware (`EmulatedStrap`, `SensorFeed`)
- `radio`: the air between virtual controllers (`VirtualRadio`)
- `recorder`: a subscriber that keeps what the gateway publishes (`TopicRecorder`)
- `servers`: real servers on loopback (`Mosquitto`, `LocalInfluxDB`, `VictoriaMetrics`,
  `ward_broker`, `local_sink`, `free_port`, `wait_port`, `stop_process`)
- `scenarios`: what the demo's babies do (`scenario`)
- `demo`: the live demo (`run_demo`, `DemoWard`)
- `cli`: `kmc demo`, added to the `kmc` command (`add_commands`)
"""
