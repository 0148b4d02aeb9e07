"""Alarms per baby-day by priority (`alarm_load`), against the files `kmc analyze` writes: the
alerts.csv rows, each its kind's priority (docs/alarms.md), over daily.csv's monitored hours."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from kmc_analysis.analyze import analyze_file
from kmc_analysis.simulate import simulate_ward
from kmc_host.clinical import ALARMS


def test_the_alarm_load_is_the_alerts_files_rows_over_its_baby_days(tmp_path: Path):
    samples, _, _ = simulate_ward(tmp_path / "ward.parquet", devices=4, days=2, seed=3)
    summary = analyze_file(samples, tmp_path / "out")
    load = summary.alarms
    priority = {a.kind: a.priority for a in ALARMS}
    with (tmp_path / "out" / "alerts.csv").open() as fh:
        counted = Counter(priority[row["kind"]] for row in csv.DictReader(fh))
    with (tmp_path / "out" / "daily.csv").open() as fh:
        hours = sum(float(row["monitored_hours"]) for row in csv.DictReader(fh))
    assert load.alarms == {p: counted.get(p, 0) for p in ("high", "medium", "low")}
    assert sum(load.alarms.values()) > 0 and load.alarms["high"] > 0  # the simulator's babies cool
    assert load.baby_days == pytest.approx(hours / 24, abs=0.01)  # daily.csv rounds its hours
    rates = load.per_baby_day()
    assert rates["high"] == pytest.approx(load.alarms["high"] / load.baby_days)
    line = next(x for x in summary.lines() if x.startswith("alarms per baby-day"))
    assert f"high {rates['high']:.2f}" in line and f"over {load.baby_days:.1f} baby-days" in line
