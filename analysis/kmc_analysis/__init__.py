"""KMC Sense's researchers' tools: recorded samples -> KMC hours, coverage, reports, exports.

Read top-down, along the data:

- `samples_io`: samples files (CSV, gzip CSV, Parquet) as checked per-strap chunks
  (`SampleReader`, `load_straps`, `SamplesFileError`, `parse_time_value`)
- `sources`: where a report's samples come from (`SampleSource`: `FileSource`,
  `InfluxSource`; `open_source`)
- `roster`: strap -> infant pseudonym, birth time and weight (`Infant`, `load_roster`)
- `settings`: the detector settings a command runs with (`--config FILE`'s `[detector]`, read as
  the gateway reads it, else the defaults) and how outputs name them (`Settings`,
  `load_settings`)
- `detection`: the detector over a whole recording (`detect_period`, `within`)
- `tables`: the tables `kmc analyze` and `kmc report` share (sessions, daily, rolling 24 h,
  day of life, alerts), built once from the detector's results; each command only picks their
  columns and formats (`straps`, `sessions`, `daily`, `rolling24`, `day_of_life`, `alerts`,
  `Table`)
- `coverage`: the 8/18/20 h indicators per infant and cohort (`infant_coverage`,
  `cohort_coverage`)
- `alarm_load`: alarms per baby-day by priority, the ward's alarm burden (`alarm_load`,
  `AlarmLoad`)
- `analyze`: `kmc analyze` (`analyze_file`); `report`, `report_html`: `kmc report`
  (`build_report`, `write_tables`, `write_html`); `exports`: `kmc export` (DHIS2, FHIR);
  `validate`: `kmc validate`
- `simulate`: the ward simulator and its ground truth (`simulate_ward`, `simulate_strap`);
  `score`: the detector against that truth
- `cli`: these commands, added to `kmc` (`add_commands`), and `make_report`
"""
