"""`kmc export fhir` after the HL7 Personal Health Device IG: every resource checked against the
FHIR R4 models (fhir.resources R4B: R4 with technical corrections; Observation, Device, Patient
and Bundle as R4 has them) and against the IG's published examples (fhir_phd_examples/, copied
from HL7/phd) field by field: profiles, codes and their systems, units, categories, the
gatewayDevice extension, references resolving inside the Bundle. The day, session and alert
Observations are checked against `kmc analyze`'s tables of the same samples."""

from __future__ import annotations

import ast
import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from conftest import read_csv as read
from conftest import run_kmc as run
from conftest import ward_a
from kmc_analysis.fhir_phd import temperature_points
from kmc_analysis.samples_io import load_straps
from kmc_analysis.simulate import simulate_ward

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = Path(__file__).with_name("fhir_phd_examples")
TZ = "Africa/Accra"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
PHD = "http://hl7.org/fhir/uv/phd/StructureDefinition/"
R4_OBSERVATION = "http://hl7.org/fhir/StructureDefinition/Observation"
DATA_ABSENT_EXT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
MODELS = {"Observation": Observation, "Device": Device, "Patient": Patient}


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def codes(concept: dict) -> list[tuple[str, str]]:
    return [(c["system"], c["code"]) for c in concept["coding"]]


def export(samples: Path, out: Path, *extra: str) -> dict:
    r = run("export", "fhir", str(samples), "--out", str(out), *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def ward(tmp_path_factory):
    """3 straps over 2 days (seed 21: cold stress and hyperthermia episodes, 22 sessions),
    exported every 15 min with the roster, and `kmc analyze`'s tables of the same samples."""
    base = tmp_path_factory.mktemp("fhir_phd")
    samples, truth, _ = simulate_ward(base / "s.parquet", 3, 2.0, seed=21, tz=TZ)
    roster = truth / "roster.csv"
    doc = export(samples, base / "bundle.json", "--roster", str(roster), *ward_a(TZ))
    r = run("analyze", str(samples), "--out", str(base / "a"), "--tz", TZ, "--roster", str(roster))
    assert r.returncode == 0, r.stderr
    return base, samples, roster, doc


def by_kind(doc: dict) -> dict[str, list[dict]]:
    """Resources by what they are: the profile of a Device or Patient, an Observation's code."""
    out: dict[str, list[dict]] = {}
    for e in doc["entry"]:
        r = e["resource"]
        key = r["meta"]["profile"][0].rsplit("/", 1)[-1]
        if r["resourceType"] == "Observation":
            key = r["code"]["coding"][0]["code"]
        out.setdefault(key, []).append(r)
    return out


# -- FHIR R4 and the Bundle's own consistency


def test_every_resource_is_fhir_r4_and_every_reference_resolves_in_the_bundle(ward):
    _, _, roster, doc = ward
    Bundle.model_validate(doc)
    assert doc["type"] == "transaction"
    urls = {}
    for e in doc["entry"]:
        r = e["resource"]
        MODELS[r["resourceType"]].model_validate(r)
        if e["request"]["method"] == "PUT":  # our own resources: idempotent, by id
            url = f"{r['resourceType']}/{r['id']}"
            assert e["fullUrl"] == url and e["request"] == {"method": "PUT", "url": url}
        else:  # a Patient: created only where the server has none with the pseudonym
            assert r["resourceType"] == "Patient" and "id" not in r
            assert e["fullUrl"].startswith("urn:uuid:")
            (ident,) = r["identifier"]
            assert e["request"] == {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": f"identifier={ident['system']}|{ident['value']}",
            }
        assert e["fullUrl"] not in urls, "each resource once"
        urls[e["fullUrl"]] = r
    kinds = by_kind(doc)
    assert [len(kinds[k]) for k in ("PhgDevice", "PhdDevice", "PhdPatient")] == [1, 3, 3]
    # every Observation's subject, device and gateway are resources of the Bundle
    infants = {row["device"]: row["infant_id"] for row in read(roster)}
    observations = [r for r in urls.values() if r["resourceType"] == "Observation"]
    assert len(observations) > 3 * 2 * 24 * 4 * 0.8  # the temperatures alone, nearly
    for obs in observations:
        strap = urls[obs["device"]["reference"]]
        assert strap["meta"]["profile"] == [PHD + "PhdDevice"]
        patient = urls[obs["subject"]["reference"]]
        assert patient["identifier"][0]["value"] == infants[strap["serialNumber"]]
        assert obs["subject"]["display"] == infants[strap["serialNumber"]]
        for ext in obs.get("extension", []):
            assert urls[ext["valueReference"]["reference"]]["meta"]["profile"] == [
                PHD + "PhgDevice"
            ]


def test_every_min_sets_the_intervals_and_ids_do_not_change_between_runs(ward, tmp_path):
    base, samples, roster, doc = ward
    again = export(samples, tmp_path / "again.json", "--roster", str(roster), *ward_a(TZ))
    assert again == doc  # the same ids, uuids and values: sending it twice updates, no copies
    hourly = export(samples, tmp_path / "h.json", "--every-min", "60", *ward_a(TZ))
    for d, minutes in ((doc, 15), (hourly, 60)):
        temps = by_kind(d)["150364"]
        for obs in temps:
            p = obs["effectivePeriod"]
            start, end = (dt.datetime.fromisoformat(p[k]) for k in ("start", "end"))
            assert end - start == dt.timedelta(minutes=minutes)
            assert start.timestamp() % (minutes * 60) == 0
            assert obs["id"] == f"kmc-{obs['device']['display']}-{int(start.timestamp())}"
    assert len(by_kind(hourly)["150364"]) < len(by_kind(doc)["150364"]) / 3
    # without a roster (a samples file has no infant tags) each strap stands for its wearer
    patients = {r["identifier"][0]["value"] for r in by_kind(hourly)["PhdPatient"]}
    assert patients == {f"strap-{s}" for s in load_straps(samples)[1]}


# -- against the IG's examples, field by field


def test_temperature_observation_follows_the_ig_example_field_by_field(ward):
    _, _, _, doc = ward
    ig = example("temperature-observation")
    temps = by_kind(doc)["150364"]
    valued = [o for o in temps if "valueQuantity" in o]
    assert valued
    for obs in valued:
        assert ig["meta"]["profile"][0] in obs["meta"]["profile"]
        assert obs["meta"]["profile"] == [
            PHD + "PhdNumericObservation",
            "http://hl7.org/fhir/StructureDefinition/bodytemp",
        ]
        # the gatewayDevice extension: the example's URL, a reference to a Device
        gateway = [x for x in ig["extension"] if x["url"].endswith("observation-gatewayDevice")]
        assert [x["url"] for x in obs["extension"]] == [gateway[0]["url"]]
        assert obs["extension"][0]["valueReference"]["reference"].startswith("Device/")
        assert obs["status"] == ig["status"] == "final"
        # both categories of the example: vital-signs and the IG's phd
        assert [codes(c) for c in obs["category"]] == [codes(c) for c in ig["category"]]
        # MDC_TEMP_BODY first, LOINC beside it: the example's codes, systems and display
        assert codes(obs["code"]) == codes(ig["code"])
        assert obs["code"]["coding"][0]["display"] == ig["code"]["coding"][0]["display"]
        assert obs["code"]["coding"][0]["display"] == "MDC_TEMP_BODY"
        # UCUM degrees Celsius, as the example
        q, iq = obs["valueQuantity"], ig["valueQuantity"]
        assert (q["system"], q["code"]) == (iq["system"], iq["code"]) == (UCUM, "Cel")
        assert 30.0 < q["value"] < 40.0
        assert obs["subject"]["reference"].startswith("urn:uuid:")
        assert obs["device"]["reference"].split("/")[0] == ig["device"]["reference"].split("/")[0]
        # effective time: a Period (the interval the median covers) where the example has a
        # dateTime; PhdBaseObservation allows both
        assert "effectiveDateTime" in ig and "effectiveDateTime" not in obs
        assert set(obs["effectivePeriod"]) == {"start", "end"}
        # nothing the example has is left out but what the strap does not report
        not_reported = {"effectiveDateTime"}  # a Period instead
        assert set(ig) - set(obs) - not_reported == set()
        assert set(obs) - set(ig) == {"effectivePeriod", "referenceRange", "note"}
        assert len(obs["referenceRange"]) == 1


def test_a_temperature_without_a_value_says_why(tmp_path):
    """Interval by interval (15 min from midnight UTC): worn with readings; off the baby; worn
    but the sensor gave no reading; no sample at all; half off, half worn."""
    t0 = 1775001600  # 2026-04-01T00:00:00Z
    rows = []
    for k, (worn, temp) in enumerate(
        [(1, "36.8"), (0, "30.0"), (1, ""), (None, None), ("half", "36.6")]
    ):
        for s in range(900):
            if worn is None:
                continue
            w = (1 if s >= 450 else 0) if worn == "half" else worn
            c = temp if w or worn != "half" else "25.0"
            rows.append([t0 + 900 * k + s, "KMC-0009", c, "30.0", 0, w])
    path = tmp_path / "s.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([["time", "device", "infant_c", "outer_c", "contact", "worn"]])
        csv.writer(fh).writerows(rows)
    doc = export(path, tmp_path / "b.json")
    Bundle.model_validate(doc)
    temps = {o["effectivePeriod"]["start"]: o for o in by_kind(doc)["150364"]}
    at = [dt.datetime.fromtimestamp(t0 + 900 * k, dt.UTC).strftime("%H:%M") for k in range(5)]
    assert sorted(temps) == [f"2026-04-01T{a}:00Z" for a in (at[0], at[1], at[2], at[4])]
    first, off, broken, half = (temps[f"2026-04-01T{at[k]}:00Z"] for k in (0, 1, 2, 4))
    assert first["valueQuantity"]["value"] == 36.8 and "dataAbsentReason" not in first
    assert half["valueQuantity"]["value"] == 36.6  # only the worn readings count
    for obs, why in ((off, "not-performed"), (broken, "error")):
        Observation.model_validate(obs)
        assert codes(obs["dataAbsentReason"]) == [
            ("http://terminology.hl7.org/CodeSystem/data-absent-reason", why)
        ]
        assert "valueQuantity" not in obs and "referenceRange" not in obs
        assert codes(obs["code"]) == codes(first["code"])  # still a PHD body temperature
        assert obs["meta"] == first["meta"] and obs["extension"] == first["extension"]
    # the same intervals however the samples come in chunks
    _, straps = load_straps(path)
    s = straps["KMC-0009"]
    whole = temperature_points(iter([("S", s)]), 900.0)["S"]
    for cuts in ([450], [900, 1800, 2250], list(range(100, len(s), 777))):
        edges = [0, *cuts, len(s)]
        parts = temperature_points(
            iter([("S", s.slice(a, b)) for a, b in zip(edges, edges[1:], strict=False)]), 900.0
        )["S"]
        assert np.array_equal(whole[0], parts[0])
        assert np.array_equal(whole[1], parts[1], equal_nan=True)
        assert whole[2].tolist() == parts[2].tolist() == ["", "not-performed", "error", ""]


def test_strap_device_follows_the_ig_phd_device_example_field_by_field(ward):
    _, samples, _, doc = ward
    ig = example("phd-74E8FFFEFF051C00.001C05FFE874")
    straps = by_kind(doc)["PhdDevice"]
    assert sorted(d["serialNumber"] for d in straps) == sorted(load_straps(samples)[1])
    for dev in straps:
        assert dev["meta"]["profile"] == ig["meta"]["profile"]
        assert dev["id"] == dev["serialNumber"]  # what the Observations reference
        # the example's Device type: a simple PHD, MDC 65573, with its display
        assert dev["type"]["coding"] == ig["type"]["coding"]
        # manufacturer, model and serial number: strings, as the example has them
        for key in ("manufacturer", "modelNumber", "serialNumber"):
            assert isinstance(ig[key], str) and isinstance(dev[key], str) and dev[key]
        assert dev["identifier"] == [{"system": "urn:kmc-sense:strap-id", "value": dev["id"]}]
        # one specialization, coded in MDC as the example's, with a version
        (spec,) = dev["specialization"]
        assert [c["system"] for c in spec["systemType"]["coding"]] == [
            c["system"] for c in ig["specialization"][0]["systemType"]["coding"]
        ]
        assert codes(spec["systemType"]) == [(MDC, "528392")]  # MDC_DEV_SPEC_PROFILE_TEMP
        assert isinstance(spec["version"], str)
        # the firmware revision entry: the example's type coding, and a value marked unknown
        # (the samples do not carry it)
        fw = next(v for v in ig["version"] if v["type"]["text"] == "Firmware revision")
        (version,) = dev["version"]
        assert version["type"]["coding"] == fw["type"]["coding"]
        assert "value" not in version
        assert version["_value"] == {
            "extension": [{"url": DATA_ABSENT_EXT, "valueCode": "unknown"}]
        }
        assert set(dev) - set(ig) == {"identifier", "meta", "id", "resourceType"} - set(ig)
        assert set(ig) - set(dev) == {"property"}  # no clock or certification properties


@pytest.mark.parametrize("name", ["phg-ecde3d4e58532d31.000000000000", "phg-example"])
def test_gateway_device_follows_the_ig_phg_device_examples(ward, name):
    _, _, _, doc = ward
    ig = example(name)
    (gw,) = by_kind(doc)["PhgDevice"]
    assert gw["meta"]["profile"] == ig["meta"]["profile"]
    assert gw["id"] == "kmc-gateway-site1-ward-a"
    assert gw["identifier"] == [{"system": "urn:kmc-sense:gateway", "value": "site1/ward-a"}]
    assert gw["type"]["coding"] == ig["type"]["coding"]  # MDC 531981, a PHG
    assert gw["type"]["text"] == ig["type"]["text"]
    (spec,) = gw["specialization"]
    assert [c["system"] for c in spec["systemType"]["coding"]] == [MDC]
    assert isinstance(spec["version"], str)
    (version,) = gw["version"]
    sw = [v for v in ig["version"] if v["type"]["coding"][0]["code"] == "531975"]
    assert [c["system"] for c in version["type"]["coding"]] == [MDC]
    assert codes(version["type"]) == [(MDC, "531975")]  # MDC_ID_PROD_SPEC_SW
    if sw:
        assert codes(version["type"]) == codes(sw[0]["type"])
    assert version["_value"]["extension"][0]["url"] == DATA_ABSENT_EXT
    if "manufacturer" in ig:
        assert isinstance(gw["manufacturer"], str)
    assert "parent" not in gw  # PhgDevice: parent 0..0


def test_the_strap_device_says_what_the_firmware_device_information_service_reports(ward):
    """Manufacturer and model as firmware/ble_service.py writes them into Device Information
    (0x2A29, 0x2A24), the serial number (0x2A25) the strap id."""
    tree = ast.parse((ROOT / "firmware" / "ble_service.py").read_text())
    (values,) = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign)
        and [getattr(t, "id", None) for t in n.targets] == ["values"]
        and isinstance(n.value, ast.Tuple)
    ]
    manufacturer, model = (ast.literal_eval(e).decode() for e in values.elts[:2])
    serial = ast.unparse(values.elts[2])
    assert serial == "strap_id.encode()"
    _, _, _, doc = ward
    for dev in by_kind(doc)["PhdDevice"]:
        assert (dev["manufacturer"], dev["modelNumber"]) == (manufacturer, model)


# -- days, sessions, alert episodes: the report's, in base R4 Observations


def _check_derived(obs: dict, kind: str, digest_tag: dict) -> None:
    Observation.model_validate(obs)
    assert obs["meta"]["profile"] == [R4_OBSERVATION]  # no PHD profile claimed
    assert obs["meta"]["tag"] == [digest_tag]
    assert obs["status"] == "final"
    assert obs["code"]["coding"][0]["system"] == "urn:kmc-sense:observation"
    assert obs["code"]["coding"][0]["code"] == kind
    assert "extension" not in obs
    assert not any(
        c["system"] == "http://terminology.hl7.org/CodeSystem/observation-category"
        and c["code"] == "vital-signs"
        for cat in obs["category"]
        for c in cat["coding"]
    ), "vital-signs would require the R4 vital signs profile"


def _utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_days_sessions_and_thermal_alerts_are_the_reports(ward):
    base, _, _, doc = ward
    kinds = by_kind(doc)
    tag = kinds["150364"][0]["meta"]["tag"][0]
    # per strap per local day: KMC hours beside monitored hours
    daily = read(base / "a" / "daily.csv")
    days = {
        (o["device"]["display"], o["effectivePeriod"]["start"][:10]): o
        for o in kinds["kmc-hours-per-day"]
    }
    assert len(days) == len(kinds["kmc-hours-per-day"]) == len(daily)
    for row in daily:
        obs = days[(row["device"], row["date"])]
        _check_derived(obs, "kmc-hours-per-day", tag)
        start, end = (
            dt.datetime.fromisoformat(obs["effectivePeriod"][k]) for k in ("start", "end")
        )
        assert start.utcoffset() == dt.timedelta(0) and end - start == dt.timedelta(
            days=1
        )  # Accra: UTC+0
        assert obs["valueQuantity"] == {
            "value": float(row["kmc_hours"]),
            "unit": "h",
            "system": UCUM,
            "code": "h",
        }
        comp = {c["code"]["coding"][0]["code"]: c for c in obs["component"]}
        assert comp["monitored-hours"]["valueQuantity"]["value"] == float(row["monitored_hours"])
        assert comp["monitored-hours"]["valueQuantity"]["code"] == "h"
        assert comp["sessions"]["valueInteger"] == int(row["sessions"])
        assert comp["effective-sessions"]["valueInteger"] == int(row["effective_sessions"])
    # per session
    sessions = read(base / "a" / "sessions.csv")
    found = {
        (o["device"]["display"], o["effectivePeriod"]["start"]): o for o in kinds["kmc-session"]
    }
    assert len(found) == len(kinds["kmc-session"]) == len(sessions) == 22
    for row in sessions:
        obs = found[(row["device"], row["start"])]
        _check_derived(obs, "kmc-session", tag)
        assert obs["effectivePeriod"]["end"] == row["end"]
        q = obs["valueQuantity"]
        assert (q["system"], q["code"]) == (UCUM, "min")
        assert q["value"] == pytest.approx(float(row["duration_min"]), abs=0.05)
        (effective,) = obs["component"]
        assert effective["valueBoolean"] == (row["effective"] == "1")
    # per thermal alert episode (device alerts are not exported)
    alerts = [
        r for r in read(base / "a" / "alerts.csv") if r["kind"] not in ("strap_off", "battery_low")
    ]
    episodes = [o for k, os in kinds.items() if k.startswith("thermal-alert-") for o in os]
    assert len(episodes) == len(alerts)
    assert {"cold_stress", "hyperthermia"} <= {r["kind"] for r in alerts}
    want = {
        "cold_stress": ("L", 36.5),
        "moderate_hypothermia": ("L", 36.0),
        "severe_hypothermia": ("LL", 32.0),
        "hyperthermia": ("H", 37.5),
    }
    got = {(o["device"]["display"], o["effectivePeriod"]["start"]): o for o in episodes}
    for row in alerts:
        obs = got[(row["device"], row["start"])]
        _check_derived(obs, f"thermal-alert-{row['kind'].replace('_', '-')}", tag)
        assert obs["effectivePeriod"].get("end", "") == row["end"]
        assert obs["valueQuantity"] == {
            "value": float(row["extreme_c"]),
            "unit": "Cel",
            "system": UCUM,
            "code": "Cel",
        }
        code, threshold = want[row["kind"]]
        assert codes(obs["interpretation"][0]) == [
            ("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", code)
        ]
        comp = {c["code"]["coding"][0]["code"]: c for c in obs["component"]}
        assert comp["band-threshold"]["valueQuantity"]["value"] == threshold
        assert _utc(obs["effectivePeriod"]["start"]) <= _utc(comp["alert-time"]["valueDateTime"])
