"""The store (`kmc sink`): the gateway's MQTT messages -> InfluxDB (docs/influxdb.md).

- `config`: the sink's TOML file (`SinkConfig`, `load_sink_config`, `load_influx_config`)
- `schema`: each MQTT message -> line-protocol points, deterministic so replays overwrite
  (`to_lines`, `to_lines_many`: a vectorised builder for samples, and the original
  point-at-a-time one as its reference)
- `lineproto`: line protocol (`line`, `tag_set`)
- `influx`: writers for InfluxDB 1.x and the v2 API (`InfluxConfig`, `make_writer`,
  `V1Writer`, `V2Writer`, `InfluxError`) and InfluxQL reads (`InfluxQL`)
- `spool`: the spool, an outbox (`kmc_host.mqtt.Outbox`) that takes a batch in one transaction
- `service`: `Sink`, a QoS 1 persistent session, PUBACK only once a message is in the spool
"""
