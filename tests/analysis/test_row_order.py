"""`kmc analyze` gives the same answer whatever the row order of the file."""

import filecmp

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from kmc_analysis.analyze import analyze_file
from kmc_analysis.simulate import simulate_ward

FILES = ("sessions.csv", "daily.csv", "alerts.csv", "rolling24.csv")


@pytest.fixture(scope="module")
def ward(tmp_path_factory):
    base = tmp_path_factory.mktemp("order")
    simulate_ward(base / "s.parquet", 3, 1.0, seed=11, truth_dir=base / "truth")
    analyze_file(base / "s.parquet", base / "ref")
    return base, pq.read_table(base / "s.parquet")


def _same(a, b):
    for name in FILES:
        assert filecmp.cmp(a / name, b / name, shallow=False), name


def test_interleaved_by_time_like_a_gateway_log(ward, tmp_path):
    base, table = ward
    order = np.lexsort((table["device"].to_numpy(zero_copy_only=False), table["time"].to_numpy()))
    pacsv.write_csv(table.take(order), tmp_path / "by_time.csv")
    summary = analyze_file(tmp_path / "by_time.csv", tmp_path / "out")
    assert summary.load.repairs == []  # streamed: each strap's rows were already in time order
    _same(base / "ref", tmp_path / "out")


def test_shuffled_rows_are_sorted_and_say_so(ward, tmp_path):
    base, table = ward
    order = np.random.default_rng(0).permutation(table.num_rows)
    pq.write_table(table.take(order), tmp_path / "shuffled.parquet", row_group_size=50_000)
    summary = analyze_file(tmp_path / "shuffled.parquet", tmp_path / "out")
    assert len(summary.load.repairs) == 3 and all(
        "sorted by time" in r for r in summary.load.repairs
    )
    assert summary.load.kept == table.num_rows
    _same(base / "ref", tmp_path / "out")


def test_duplicate_in_a_shuffled_file_is_still_found(ward, tmp_path):
    _, table = ward
    dup = table.slice(100, 1)
    order = np.random.default_rng(1).permutation(table.num_rows)
    shuffled = table.take(order)
    import pyarrow as pa

    pq.write_table(pa.concat_tables([shuffled, dup]), tmp_path / "dup.parquet")
    from kmc_analysis.samples_io import SamplesFileError

    with pytest.raises(
        SamplesFileError, match=rf"line {table.num_rows + 1}: duplicate \(device, time\)"
    ):
        analyze_file(tmp_path / "dup.parquet", tmp_path / "out")
    assert not (tmp_path / "out" / "sessions.csv").exists()
