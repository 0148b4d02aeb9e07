"""The gateway: strap links over BLE, live detection, publishing (issue #4, in progress)."""
