"""The ward screen (`kmc ward`): live beds, alerts and acknowledgements for nurses, in a browser."""
