"""tables.py: one builder per table for `kmc analyze` and `kmc report`, so both commands write
the same numbers (rounded once, correctly), the same cohort mean, and typed empty tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import T0, signal
from conftest import read_csv as read
from kmc_analysis import tables
from kmc_analysis.analyze import analyze_file
from kmc_analysis.detection import detect_period
from kmc_analysis.report import build_report, write_tables
from kmc_analysis.roster import load_roster
from kmc_analysis.samples_io import SampleReader
from kmc_host.detect import DetectorConfig, zone

H = 3600
TZ = "Africa/Addis_Ababa"  # T0 is its midnight: each strap below has one local day


def _ward(tmp_path, kmc_seconds, worn_after=20 * H, cold_s=0):
    """Straps S0, S1, ...: 10 min worn, one KMC session of the given length, `cold_s` worn at
    35.8 C (cold stress and moderate hypothermia), `worn_after` worn; a samples file and a
    roster (every infant eligible)."""
    parts = []
    for k, seconds in enumerate(kmc_seconds):
        s = signal(
            (600, 0, 1, 36.8), (seconds, 1, 1, 36.9), (cold_s, 0, 1, 35.8), (worn_after, 0, 1, 36.8)
        )
        parts.append(
            pa.table(
                {
                    "time": s.time,
                    "device": [f"S{k}"] * len(s),
                    "infant_c": s.infant_c,
                    "outer_c": s.outer_c,
                    "contact": s.contact,
                    "worn": s.worn,
                }
            )
        )
    pq.write_table(pa.concat_tables(parts), tmp_path / "s.parquet")
    with (tmp_path / "roster.csv").open("w") as fh:
        fh.write("device,infant_id,birth_time,birth_weight_g\n")
        for k in range(len(kmc_seconds)):
            fh.write(f"S{k},I{k},{T0 - 4 * 86400:.0f},1500\n")
    return tmp_path / "s.parquet", tmp_path / "roster.csv"


def _both(tmp_path, samples, roster):
    """`kmc analyze` and `kmc report` (CSV and Parquet) of the same file."""
    analyze_file(samples, tmp_path / "ana", tz=TZ, roster_path=roster)
    reader = SampleReader(samples)
    detected = reader.consume(lambda chunks: detect_period(chunks, DetectorConfig()))
    rep = build_report(detected, tz=TZ, roster=load_roster(roster))
    write_tables(rep, tmp_path / "rep")
    return tmp_path / "ana", tmp_path / "rep"


def test_a_tie_is_rounded_once_the_same_in_both_commands(tmp_path):
    # 7521 s is 125.35 min; its double is 125.34999..., which rounds to 125.3. np.round, which
    # report used, scales first and gave 125.4 while analyze wrote 125.3.
    assert f"{7521 / 60:.1f}" == "125.3" and np.round(7521 / 60, 1) == 125.4
    ana, rep = _both(tmp_path, *_ward(tmp_path, [7521]))
    assert read(ana / "sessions.csv")[0]["duration_min"] == "125.3"
    assert read(rep / "sessions.csv")[0]["duration_min"] == "125.3"
    assert pq.read_table(rep / "sessions.parquet").column("duration_min").to_pylist() == [125.3]
    assert tables.rounded(np.array([7521 / 60, np.nan]), 1).tolist()[0] == 125.3


def test_rounding_agrees_with_fixed_decimals_everywhere():
    # what makes analyze's fixed decimals and report's floats one number: for every value
    rng = np.random.default_rng(2)
    x = np.concatenate((rng.integers(0, 200_000, 5000) / 3600, rng.integers(0, 90_000, 5000) / 60))
    for digits in (1, 2, 3):
        r = tables.rounded(x, digits)
        assert [f"{v:.{digits}f}" for v in r.tolist()] == [f"{v:.{digits}f}" for v in x.tolist()]
        assert [float(f"{v:.{digits}f}") for v in x.tolist()] == r.tolist()
    assert np.isnan(tables.rounded(np.array([np.nan]), 3)[0])


def test_the_cohort_mean_is_the_mean_of_unrounded_infant_means(tmp_path):
    # means 1.000278, 1.000556, 1.000556 h: their mean is 1.000463 -> 1.000; the mean of the
    # rounded means (1.000, 1.001, 1.001), which report took, is 1.000667 -> 1.001
    ana, rep = _both(tmp_path, *_ward(tmp_path, [3601, 3602, 3602]))
    cohort = [r for r in read(ana / "coverage.csv") if r["scope"] == "cohort"][0]
    assert cohort["mean_kmc_hours"] == "1.000"
    assert read(rep / "cohort.csv")[0]["mean_kmc_hours"] == "1.0"
    assert [r["mean_kmc_hours"] for r in read(rep / "infants.csv")] == ["1.0", "1.001", "1.001"]


def _detected(samples):
    return SampleReader(samples).consume(lambda chunks: detect_period(chunks, DetectorConfig()))


def test_empty_tables_keep_their_column_types(tmp_path):
    samples, roster = _ward(tmp_path, [1200], cold_s=1200)
    detected = _detected(samples)
    full = tables.straps(detected, zone(TZ), load_roster(roster))
    none: list[tables.Strap] = tables.straps({}, zone(TZ))
    for build in (tables.sessions, tables.rolling24, tables.day_of_life, tables.alerts):
        a, b = build(full), build(none)
        assert len(b) == 0 and list(a.columns) == list(b.columns)
        assert [v.dtype.kind for v in a.columns.values()] == [
            v.dtype.kind for v in b.columns.values()
        ], a.name
    assert len(tables.alerts(full)) == 2  # cold stress and, nested in it, moderate hypothermia
    # in Parquet: a report without a roster has no day of life, in the same schema
    with_roster = build_report(detected, tz=TZ, roster=load_roster(roster))
    without = build_report(detected, tz=TZ)
    write_tables(with_roster, tmp_path / "a")
    write_tables(without, tmp_path / "b")
    a = pq.read_schema(tmp_path / "a" / "day_of_life.parquet")
    b = pq.read_schema(tmp_path / "b" / "day_of_life.parquet")
    assert pq.read_table(tmp_path / "b" / "day_of_life.parquet").num_rows == 0
    assert a.remove_metadata() == b.remove_metadata()
    assert str(b.field("device").type) == "string" and str(b.field("day_of_life").type) == "int64"


def test_a_day_is_observed_by_its_unrounded_hours(tmp_path):
    # 20 h less a second of data rounds to 20.000 h but is not the 20 h an observed day needs
    samples, _ = _ward(tmp_path, [1200], worn_after=20 * H - 1 - 1800)
    d = tables.daily(tables.straps(_detected(samples), zone(TZ)), 20.0)
    assert d.columns["monitored_hours"].tolist() == [20.0]
    assert d.columns["observed"].tolist() == [False]
