"""BLE for the gateway, behind bleak's own seam (`bleak.backends.client`).

In a ward bleak runs on BlueZ; elsewhere these backends put bleak on Google's bumble stack:

- `bumble_backend`: `BumbleBleakScanner`, `BumbleBleakClient` (bonds, LE Secure Connections
  pairing with the label's passkey), `central_access` (a bumble central as the gateway's
  `BleAccess`), `open_hci_central` (bumble on an HCI transport: a USB dongle, a serial
  controller, a controller on TCP)
- `errors`: `LinkSecurityError`, `is_security_failure` (BlueZ's and bumble's pairing failures)

The virtual radio the demo and the tests put these on lives in the testbed
(`kmc_testbed.radio`), not here.
"""
