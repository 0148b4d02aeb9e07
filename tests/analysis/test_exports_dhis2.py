"""DHIS2 out of the box: the WHO RMNCAH package's KMC data element filled with no mapping of data
elements, and `kmc export dhis2-metadata` for the rest, checked against DHIS2's own objects.

tests/schemas/dhis2-examples/ holds the reference data: metadata.json, objects copied from the
sources its $comment names (DHIS2's metadata import tests in dhis2/dhis2-core, and the RMNCAH
package, dhis2/metadata-package-development metadata/RMNCAH/RMNCAH_COMPLETE_V1_DHIS2.36/
metadata.json); dataValueSetJ.json, as it is in dhis2-core@3f8c14a0
dhis-2/dhis-test-integration/src/test/resources/datavalueset/dataValueSetJ.json.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import zoneinfo
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from conftest import read_csv as read
from conftest import run_kmc as run
from conftest import ward_a
from kmc_analysis import dhis2_metadata as md
from kmc_analysis.exports import COUNTS, load_dhis2_mapping, newborns_started_kmc
from kmc_analysis.simulate import simulate_ward

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tests" / "schemas"
MAPPING = ROOT / "deploy" / "dhis2-mapping.example.toml"
VALUE_SET = json.loads((SCHEMAS / "dhis2-dataValueSet.schema.json").read_text())
METADATA = json.loads((SCHEMAS / "dhis2-metadata.schema.json").read_text())
EXAMPLES = SCHEMAS / "dhis2-examples"
TZ = "Africa/Lagos"
UID = re.compile(r"[A-Za-z][A-Za-z0-9]{10}")


def example_metadata() -> dict:
    return json.loads((EXAMPLES / "metadata.json").read_text())


@pytest.fixture(scope="module")
def ward(tmp_path_factory):
    """3 straps over a month boundary, 30 March to 2 April, and their report's tables."""
    base = tmp_path_factory.mktemp("dhis2")
    samples, truth, _ = simulate_ward(base / "s.parquet", 3, 3.0, seed=8, tz=TZ, start="2026-03-30")
    rep = run(
        "report",
        str(samples),
        "--roster",
        str(truth / "roster.csv"),
        "--tz",
        TZ,
        "--out",
        str(base / "rep"),
    )
    assert rep.returncode == 0, rep.stderr
    return samples, truth / "roster.csv", base / "rep"


@pytest.fixture(scope="module")
def metadata_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("md") / "kmc-metadata.json"
    r = run("export", "dhis2-metadata", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


# -- the RMNCAH package


def test_the_rmncah_data_element_is_the_packages():
    """The constants the default mapping uses are the package's own: uid, code, the default
    category combo (so a value needs no category option combo) and the Monthly data set."""
    ex = example_metadata()
    (kmc,) = [d for d in ex["dataElements"] if d.get("code") == md.RMNCAH_NN_KMC_CODE]
    assert kmc["id"] == md.RMNCAH_NN_KMC
    assert kmc["valueType"] == "INTEGER_ZERO_OR_POSITIVE" and kmc["aggregationType"] == "SUM"
    assert "initiated on KMC" in kmc["description"]
    (rmncah,) = [s for s in ex["dataSets"] if s["id"] == md.RMNCAH_MONTHLY_DATA_SET]
    assert rmncah["periodType"] == "Monthly"
    assert kmc["categoryCombo"] == rmncah["categoryCombo"]  # the package's "default" combo
    assert {"dataElement": {"id": md.RMNCAH_NN_KMC}, "dataSet": {"id": rmncah["id"]}} in rmncah[
        "dataSetElements"
    ]


# -- newborns started on KMC, on constructed data


def _t(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zoneinfo.ZoneInfo(TZ)).timestamp()


def test_newborns_count_in_the_local_month_of_their_first_session():
    first_kmc = {
        "A": _t("2026-03-10 08:00"),
        "B": _t("2026-04-01 00:30"),  # 31 March 23:30 UTC: April in Lagos
        "C": np.nan,  # never in KMC
        "D": _t("2026-03-31 23:59"),
    }
    first_data = {"A": _t("2026-03-09 12:00"), "B": _t("2026-03-31 20:00"), "C": 0.0, "D": 0.0}
    started, left_out = newborns_started_kmc(first_kmc, first_data, TZ, None)
    assert started == {"202603": 2, "202604": 1} and left_out == []


def test_newborns_already_on_the_ward_when_the_period_begins_are_not_counted():
    since = _t("2026-03-01 00:00")
    first_kmc = {
        "there": since + 600,  # data from the period's start: KMC may have begun before it
        "there_later": since + 5 * 3600,  # ... even when the first session is hours later
        "admitted": since + 2 * 3600 + 60,  # strap put on 2 h in, KMC at once: started here
    }
    first_data = {"there": since, "there_later": since + 1800, "admitted": since + 2 * 3600}
    started, left_out = newborns_started_kmc(first_kmc, first_data, TZ, since)
    assert started == {"202603": 1}
    assert left_out == ["there", "there_later"]
    assert newborns_started_kmc(first_kmc, first_data, TZ, None)[0] == {"202603": 3}


# -- the data value set with the example mapping


def test_example_mapping_needs_no_data_element_ids(ward, metadata_file, tmp_path):
    samples, roster, rep = ward
    out = tmp_path / "dvs.json"
    r = run(
        "export",
        "dhis2",
        str(samples),
        "--mapping",
        str(MAPPING),
        "--roster",
        str(roster),
        *ward_a(TZ),
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, VALUE_SET)
    jsonschema.validate(json.loads((EXAMPLES / "dataValueSetJ.json").read_text()), VALUE_SET)
    assert "dataSet" not in doc  # values of two data sets: RMNCAH and KMC Sense
    assert all("categoryOptionCombo" not in v for v in doc["dataValues"])  # default combos
    defined = {d["id"] for d in json.loads(metadata_file.read_text())["dataElements"]}
    sent = {v["dataElement"] for v in doc["dataValues"]}
    assert sent == defined | {md.RMNCAH_NN_KMC}  # every count, each where the defaults say

    # newborns started on KMC, from the report's sessions table: month of each first session
    first: dict[str, float] = {}
    for s in read(rep / "sessions.csv"):
        start = dt.datetime.fromisoformat(s["start"]).timestamp()
        first[s["device"]] = min(first.get(s["device"], start), start)
    months = [
        dt.datetime.fromtimestamp(t, zoneinfo.ZoneInfo(TZ)).strftime("%Y%m") for t in first.values()
    ]
    assert len(first) == 3
    newborns = {
        v["period"]: v["value"] for v in doc["dataValues"] if v["dataElement"] == md.RMNCAH_NN_KMC
    }
    assert newborns == {m: str(months.count(m)) for m in ("202603", "202604")}

    # one of the other counts, to see the defaults route it: observed infant-days
    days = md.BY_COUNT["infant_days"].uid
    daily = [d for d in read(rep / "daily.csv") if d["observed"] == "1"]
    for month in ("202603", "202604"):
        (value,) = [
            v["value"]
            for v in doc["dataValues"]
            if (v["dataElement"], v["period"]) == (days, month)
        ]
        prefix = f"{month[:4]}-{month[4:]}"
        assert int(value) == sum(d["date"].startswith(prefix) for d in daily)


def test_export_from_a_date_leaves_out_infants_already_there(ward, tmp_path):
    samples, roster, _ = ward
    out = tmp_path / "dvs.json"
    r = run(
        "export",
        "dhis2",
        str(samples),
        "--mapping",
        str(MAPPING),
        "--roster",
        str(roster),
        "--from",
        "2026-03-31",
        *ward_a(TZ),
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert "leaves out 3 infant(s)" in r.stdout
    doc = json.loads(out.read_text())
    newborns = [v["value"] for v in doc["dataValues"] if v["dataElement"] == md.RMNCAH_NN_KMC]
    assert newborns == ["0", "0"]  # March and April: all three were there on 31 March


def test_example_mapping_comments_name_the_default_ids():
    text = MAPPING.read_text()
    defaults = load_dhis2_mapping(MAPPING).data_elements
    named = dict(re.findall(r"^# (\w+) = \"(\w+)\"", text, re.M))
    assert named.pop("data_set") == md.RMNCAH_MONTHLY_DATA_SET
    named |= dict(
        re.findall(r"(\w+) +-> (\w{11})\b", text) + re.findall(r"e\.g\. (\w+) -> (\w+)", text)
    )
    assert len(named) == 3
    named = list(named.items())
    for count, uid in named:
        assert defaults[count] == (uid, None), count
    assert set(defaults) == set(COUNTS)


# -- the metadata file


def test_metadata_is_a_dhis2_import_document_like_dhis2s_own(metadata_file):
    doc = json.loads(metadata_file.read_text())
    jsonschema.validate(doc, METADATA)
    ex = example_metadata()
    jsonschema.validate({k: v for k, v in ex.items() if k != "$comment"}, METADATA)
    # field by field: each object holds only fields DHIS2's own objects of its type hold
    for kind, objs in doc.items():
        fields = set().union(*(o.keys() for o in ex[kind]))
        for o in objs:
            assert set(o) <= fields, (kind, set(o) - fields)
    assert {e.count for e in md.ELEMENTS} == set(COUNTS) - {"newborns_started_kmc"}


def test_metadata_references_resolve_and_names_are_unique(metadata_file):
    doc = json.loads(metadata_file.read_text())
    elements = {d["id"]: d for d in doc["dataElements"]}
    types = {t["id"] for t in doc["indicatorTypes"]}
    uids = [o["id"] for objs in doc.values() for o in objs]
    assert all(UID.fullmatch(u) for u in uids)
    assert len(set(uids)) == len(uids) and md.RMNCAH_NN_KMC not in uids
    for kind in ("dataElements", "indicators"):
        for field in ("name", "shortName", "code"):
            values = [o[field] for o in doc[kind]]
            assert len(set(values)) == len(values), (kind, field)
    for i in doc["indicators"]:
        assert i["indicatorType"]["id"] in types
        for side in ("numerator", "denominator"):
            assert re.fullmatch(r"#\{(\w{11})\}", i[side])[1] in elements, (i["code"], side)
    (ds,) = doc["dataSets"]
    assert {e["dataElement"]["id"] for e in ds["dataSetElements"]} == set(elements)
    assert {e["dataSet"]["id"] for e in ds["dataSetElements"]} == {ds["id"]}
    percent = {t["id"] for t in doc["indicatorTypes"] if t["factor"] == 100}
    by_code = {i["code"]: i for i in doc["indicators"]}
    reach = by_code["KMC_SENSE_INFANTS_REACHING_18H_PCT"]
    assert reach["indicatorType"]["id"] in percent
    assert reach["numerator"] == "#{" + md.BY_COUNT["infants_reaching_18h"].uid + "}"
    assert reach["denominator"] == "#{" + md.BY_COUNT["eligible_infants"].uid + "}"


def test_metadata_is_the_same_file_on_every_run(metadata_file, tmp_path):
    again = tmp_path / "again.json"
    r = run("export", "dhis2-metadata", "--out", str(again))
    assert r.returncode == 0, r.stderr
    assert again.read_bytes() == metadata_file.read_bytes()


def test_stable_uids_are_valid_distinct_and_do_not_change():
    codes = [f"KMC_SENSE_X{i}" for i in range(5000)]
    uids = [md.stable_uid(c) for c in codes]
    assert all(UID.fullmatch(u) for u in uids) and len(set(uids)) == len(uids)
    assert {u[0] for u in uids} - set(md._FIRST) == set()
    # another interpreter, another hash seed: the same uid
    code = "import sys; from kmc_analysis.dhis2_metadata import stable_uid; print(stable_uid('A'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == md.stable_uid("A")
    # imported metadata is found again by these: changing the derivation would duplicate it
    assert md.BY_COUNT["kmc_hours"].uid == "ZG81fUgGAtH"


# -- docs/exports.md shows what the exports write


def _doc_json_blocks() -> list[dict]:
    """The JSON excerpts of docs/exports.md's DHIS2 section (its FHIR section has its own)."""
    text = (ROOT / "docs" / "exports.md").read_text()
    dhis2 = text.split("\n## DHIS2\n", 1)[1].split("\n## ", 1)[0]
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", dhis2, re.S)]


def _contained(part: object, whole: object) -> bool:
    """`part` is `whole` with some keys or list items left out."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and _contained(v, whole[k]) for k, v in part.items()
        )
    if isinstance(part, list):
        return isinstance(whole, list) and all(any(_contained(p, w) for w in whole) for p in part)
    return part == whole


def test_docs_metadata_excerpt_is_the_files(metadata_file):
    meta, _ = _doc_json_blocks()
    doc = json.loads(metadata_file.read_text())
    assert meta["dataElements"] and _contained(meta, doc)


def test_docs_data_value_excerpt_is_the_simulated_wards(ward, tmp_path):
    samples, roster, _ = ward
    out = tmp_path / "dvs.json"
    args = ("--mapping", str(MAPPING), "--roster", str(roster), *ward_a(TZ), "--out", str(out))
    r = run("export", "dhis2", str(samples), *args)
    assert r.returncode == 0, r.stderr
    _, values = _doc_json_blocks()
    assert len(values["dataValues"]) == 3 and _contained(values, json.loads(out.read_text()))
