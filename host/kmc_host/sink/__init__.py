"""The store (`kmc sink`): the gateway's MQTT messages -> InfluxDB (docs/influxdb.md).

- `config`: the sink's TOML file (`SinkConfig`, `load_sink_config`, `load_influx_config`)
- `schema`: each MQTT message -> line-protocol points, deterministic so replays overwrite
  (`to_lines`)
- `lineproto`: line protocol (`line`, `tag_set`)
- `influx`: writers for InfluxDB 1.x and the v2 API (`InfluxConfig`, `make_writer`,
  `V1Writer`, `V2Writer`, `InfluxError`) and InfluxQL reads (`InfluxQL`)
- `service`: `Sink`, a QoS 1 persistent session, PUBACK only once a message is in the spool
"""
