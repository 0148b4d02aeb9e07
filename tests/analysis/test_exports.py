"""DHIS2 and FHIR exports, validated against their published structures: the DHIS2 data value
set (tests/schemas, from the DHIS2 Web API manual) and FHIR R4 models (fhir.resources, R4B:
R4 with technical corrections; Observation and Bundle are unchanged from R4)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from conftest import read_csv as read
from conftest import run_kmc as run
from conftest import ward_a
from kmc_analysis.exports import temperature_points
from kmc_analysis.samples_io import load_straps
from kmc_analysis.simulate import simulate_ward

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "schemas" / "dhis2-dataValueSet.schema.json").read_text())
TZ = "Africa/Lagos"


@pytest.fixture(scope="module")
def ward(tmp_path_factory):
    """3 straps over a month boundary: 30 March to 2 April."""
    base = tmp_path_factory.mktemp("exports")
    samples, truth, _ = simulate_ward(base / "s.parquet", 3, 3.0, seed=8, tz=TZ, start="2026-03-30")
    return base, samples, truth / "roster.csv"


# a mapping of a country's own data elements (the example file maps none: the defaults)
CUSTOM = """
[dhis2]
data_set = "KmcMonthly1"
org_unit = "FacilityOU1"
[dhis2.org_units]
"site1/ward-a" = "KmcWardA001"
[dhis2.data_elements]
eligible_infants = "KmcElig0001"
infants_reaching_18h = "KmcReach018"
infant_days = "KmcDays0001"
infant_days_ge_18h = "KmcDays0018"
kmc_hours = "KmcHours001"
thermal_alerts = "KmcAlerts01"
"""


def test_dhis2_export_is_a_valid_data_value_set_with_the_report_counts(ward, tmp_path):
    base, samples, roster = ward
    out = tmp_path / "dvs.json"
    (tmp_path / "custom.toml").write_text(CUSTOM)
    r = run(
        "export",
        "dhis2",
        str(samples),
        "--mapping",
        str(tmp_path / "custom.toml"),
        "--roster",
        str(roster),
        *ward_a(TZ),
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert doc["dataSet"] == "KmcMonthly1"
    assert {v["orgUnit"] for v in doc["dataValues"]} == {"KmcWardA001"}  # the ward's own unit
    months = sorted({v["period"] for v in doc["dataValues"]})
    assert months == ["202603", "202604"]
    value = {(v["dataElement"], v["period"]): v["value"] for v in doc["dataValues"]}

    rep = run(
        "report", str(samples), "--roster", str(roster), "--tz", TZ, "--out", str(tmp_path / "rep")
    )
    assert rep.returncode == 0, rep.stderr
    daily = [d for d in read(tmp_path / "rep" / "daily.csv") if d["observed"] == "1"]
    for month, prefix in (("202603", "2026-03"), ("202604", "2026-04")):
        days = [d for d in daily if d["date"].startswith(prefix)]
        assert int(value[("KmcDays0001", month)]) == len(days)
        assert int(value[("KmcDays0018", month)]) == sum(float(d["kmc_hours"]) >= 18 for d in days)
        assert float(value[("KmcHours001", month)]) == pytest.approx(
            sum(float(d["kmc_hours"]) for d in days), abs=0.1
        )
        infants = {d["device"] for d in days}
        assert int(value[("KmcElig0001", month)]) == len(infants)
        reach = sum(
            np.mean([float(d["kmc_hours"]) for d in days if d["device"] == dev]) >= 18
            for dev in infants
        )
        assert int(value[("KmcReach018", month)]) == reach
    alerts = read(tmp_path / "rep" / "alerts.csv")
    thermal = [a for a in alerts if a["kind"] not in ("strap_off", "battery_low")]
    assert sum(int(value[("KmcAlerts01", m)]) for m in months) == len(thermal)


@pytest.mark.parametrize(
    "text, words",
    [
        (
            '[dhis2]\norg_unit = "short"\n[dhis2.data_elements]\nkmc_hours = "KmcHours001"\n',
            "org_unit 'short' is not a DHIS2 UID",
        ),
        (
            '[dhis2]\norg_unit = "FacilityOU1"\n[dhis2.data_elements]\nkmc_minutes = "KmcHours001"\n',
            "unknown key(s) kmc_minutes",
        ),
        ('[dhis2]\norg_unit = "FacilityOU1"\n[dhis2.data_elements]\n', "map at least one"),
        ('[dhis2]\norg_unit = "FacilityOU1"\n[dhis2.data_elements]\nkmc_hours = 3\n', "kmc_hours"),
        ('[dhis2]\n[dhis2.data_elements]\nkmc_hours = "KmcHours001"\n', "org_unit"),
    ],
)
def test_dhis2_mapping_errors_name_the_key(ward, tmp_path, text, words):
    _, samples, _ = ward
    (tmp_path / "m.toml").write_text(text)
    r = run(
        "export",
        "dhis2",
        str(samples),
        "--mapping",
        str(tmp_path / "m.toml"),
        "--out",
        str(tmp_path / "x.json"),
    )
    assert r.returncode == 2 and words in r.stderr and "m.toml" in r.stderr


def test_fhir_bundle_validates_as_r4_observations_of_body_temperature(ward, tmp_path):
    base, samples, roster = ward
    out = tmp_path / "bundle.json"
    r = run(
        "export",
        "fhir",
        str(samples),
        "--roster",
        str(roster),
        "--every-min",
        "60",
        "--from",
        "2026-03-31",
        "--to",
        "2026-03-31",
        "--tz",
        TZ,
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    bundle = Bundle.model_validate(doc)  # raises on anything R4(B) does not allow
    assert bundle.type == "transaction"
    # the temperatures (tests/analysis/test_exports_fhir_phd.py checks the other resources)
    entries = [
        e
        for e in doc["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["coding"][0]["code"] == "150364"
    ]
    assert 3 * 20 <= len(entries) <= 3 * 24  # hourly, the hours of one day with data, 3 straps
    patients = {
        e["fullUrl"]: e["resource"]["identifier"][0]["value"]
        for e in doc["entry"]
        if e["resource"]["resourceType"] == "Patient"
    }
    for e in entries:
        obs = Observation.model_validate(e["resource"])
        # what the models do not enforce: the status code set and the vital-signs profile
        assert obs.status == "final"
        assert obs.category[0].coding[0].code == "vital-signs"
        assert obs.effectivePeriod.start < obs.effectivePeriod.end
        assert [(c.system, c.code) for c in obs.code.coding] == [
            ("urn:iso:std:iso:11073:10101", "150364"),
            ("http://loinc.org", "8310-5"),
        ]
        if obs.valueQuantity is not None:
            assert (
                obs.valueQuantity.code == "Cel"
                and obs.valueQuantity.system == "http://unitsofmeasure.org"
            )
        else:
            assert obs.dataAbsentReason.coding[0].code in ("not-performed", "error")
        assert patients[obs.subject.reference].startswith("INF-")  # the roster's pseudonym
        assert obs.device.reference.startswith("Device/KMC-")
        assert e["request"] == {"method": "PUT", "url": f"Observation/{obs.id}"}
    assert len({e["resource"]["id"] for e in entries}) == len(entries)
    # one value checked by hand: the median of that hour's worn readings
    first = next(e["resource"] for e in entries if "valueQuantity" in e["resource"])
    _, straps = load_straps(samples)
    s = straps[first["device"]["display"]]
    t0 = (
        np.datetime64(first["effectivePeriod"]["start"].rstrip("Z"))
        .astype("datetime64[s]")
        .astype(float)
    )
    k = (s.time >= t0) & (s.time < t0 + 3600) & (s.worn == 1) & np.isfinite(s.infant_c)
    assert first["valueQuantity"]["value"] == pytest.approx(
        round(float(np.median(s.infant_c[k])), 2)
    )


@pytest.mark.parametrize("seed", range(3))
def test_temperature_points_do_not_depend_on_chunking(ward, seed):
    _, samples, _ = ward
    _, straps = load_straps(samples)
    s = straps[sorted(straps)[0]]
    whole = temperature_points(iter([("S", s)]), 900.0)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(s)), 40, replace=False))
    edges = [0, *cuts.tolist(), len(s)]
    parts = temperature_points(
        iter([("S", s.slice(a, b)) for a, b in zip(edges, edges[1:], strict=False)]), 900.0
    )
    assert np.array_equal(whole["S"][0], parts["S"][0])
    assert np.array_equal(whole["S"][1], parts["S"][1], equal_nan=True)
    assert np.array_equal(whole["S"][2], parts["S"][2])


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["dhis2-metadata", "--config", "x.toml"],
            "--config: not used by kmc export dhis2-metadata",
        ),
        (["dhis2-metadata", "s.csv", "--tz", "Africa/Kampala"], "SAMPLES, --tz: not used"),
        (["fhir", "s.csv", "--mapping", "m.toml"], "--mapping: not used by kmc export fhir"),
        (["dhis2", "s.csv", "--every-min", "5"], "--every-min: not used by kmc export dhis2"),
    ],
)
def test_an_export_option_its_format_does_not_use_is_refused(tmp_path, argv, said, capsys):
    """No option may silently do nothing: a format given another's option refuses it by name."""
    from kmc_host.cli import main

    code = main(["export", *argv, "--out", str(tmp_path / "out.json")])
    assert code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
