"""KMC Sense analysis: researchers' tools over recorded samples (load, analyze, simulate).

`tables` builds the tables `kmc analyze` and `kmc report` share (sessions, daily, rolling 24 h,
day of life, alerts) once, from the detector's results; each command only picks their columns
and formats.
"""
