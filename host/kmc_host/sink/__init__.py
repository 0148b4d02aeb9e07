"""The store stage: gateway MQTT messages -> InfluxDB (`kmc sink`); schema in docs/influxdb.md."""
