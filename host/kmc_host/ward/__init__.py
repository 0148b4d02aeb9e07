"""The ward screen (`kmc ward`): live beds, alerts and acknowledgements for nurses, in a browser.

- `config`: the ward's TOML file (`WardConfig`, `load_ward_config`, `languages`)
- `model`: pure: beds, alerts, urgency order, escalation, acknowledgement, from the MQTT
  messages (`WardModel`, `Alert`, `Bed`, `band`, `MessageIgnored`)
- `audit`: the audit log on disk; open alerts survive a restart (`AuditLog`)
- `auth`: the ward PIN, sessions, CSRF tokens, the attempt limit (`WardAuth`, `TooManyAttempts`)
- `server`: aiohttp: the page, server-sent events, login/ack/export (`serve_ward`,
  `WardService`; `WardThread` runs it beside other work, as the demo does)
- `static/`: the one page (HTML, plain JavaScript, CSS, `strings.json` in every language)
"""
