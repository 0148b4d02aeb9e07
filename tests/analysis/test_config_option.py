"""`--config FILE` on `kmc analyze`, `report`, `export` and `validate`: the gateway's `[detector]`
settings move what each command computes, and every output names the settings it was made with
(settings.json, the report's page and Parquet metadata, DHIS2 comments, FHIR tags and reference
ranges, validate's summary). Bad files stop the command with one line naming file and key."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import pytest
from fhir.resources.R4B.observation import Observation

from conftest import read_csv as read
from conftest import run_kmc
from kmc_analysis.detection import detect_period
from kmc_analysis.report_html import trace_figure
from kmc_analysis.samples_io import SampleReader
from kmc_analysis.simulate import simulate_ward
from kmc_analysis.tables import straps
from kmc_host.detect import DetectorConfig, zone
from kmc_host.gateway.config import load_config

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "deploy" / "dhis2-mapping.example.toml"
DHIS2_SCHEMA = json.loads(
    (ROOT / "tests" / "schemas" / "dhis2-dataValueSet.schema.json").read_text()
)
TZ = "Africa/Accra"

# each moves something the simulated ward shows (3 straps, 2 days, seed 21: 3 cold stress
# episodes, 1 hyperthermia, 22 sessions of which 4 are shorter than 60 min)
WARMER_COLD_STRESS = "[detector.thresholds_c]\ncold_stress = 37.0\n"  # more cold stress
AXILLARY_OFFSET = "[detector]\naxillary_offset_c = 0.5\n"  # the reading judged 0.5 C warmer
LONGER_SESSIONS = "[detector]\nmin_session_s = 3600\n"  # sessions under 60 min are handling
DEFAULT_DIGEST = DetectorConfig().digest()


def digest_of(values: dict) -> str:
    return DetectorConfig.from_mapping(values).digest()


@pytest.fixture(scope="module")
def ward(tmp_path_factory):
    base = tmp_path_factory.mktemp("config_option")
    samples, truth, _ = simulate_ward(base / "s.parquet", 3, 2.0, seed=21, tz=TZ)
    configs = {}
    for name, text in (
        ("warmer", WARMER_COLD_STRESS),
        ("offset", AXILLARY_OFFSET),
        ("longer", LONGER_SESSIONS),
    ):
        configs[name] = base / f"{name}.toml"
        configs[name].write_text(text)
    log = base / "observer.csv"  # an observer who logged exactly the true sessions
    with log.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["device", "start", "end"])
        w.writeheader()
        w.writerows(
            {k: r[k] for k in ("device", "start", "end")} for r in read(truth / "sessions.csv")
        )
    return base, samples, configs, log


def kmc(*args: str | Path) -> str:
    r = run_kmc(*map(str, args))
    assert r.returncode == 0, r.stderr
    return r.stdout


def settings_json(folder: Path) -> dict:
    return json.loads((folder / "settings.json").read_text())


def test_analyze_with_a_warmer_cold_stress_threshold(ward, tmp_path):
    _, samples, configs, _ = ward
    said = kmc("analyze", samples, "--tz", TZ, "--out", tmp_path / "default")
    assert f"detector settings {DEFAULT_DIGEST} (the defaults)" in said
    moved = kmc(
        "analyze", samples, "--tz", TZ, "--out", tmp_path / "warm", "--config", configs["warmer"]
    )
    digest = digest_of({"thresholds_c": {"cold_stress": 37.0}})
    assert digest != DEFAULT_DIGEST
    assert f"detector settings {digest} ([detector] of {configs['warmer']})" in moved

    def cold(folder: str) -> int:
        return Counter(a["kind"] for a in read(tmp_path / folder / "alerts.csv"))["cold_stress"]

    assert cold("warm") > cold("default") > 0  # a baby at 36.5-37.0 C is now in cold stress
    assert settings_json(tmp_path / "default") | {"detector": None} == {
        "detector_digest": DEFAULT_DIGEST,
        "config": "defaults",
        "detector_section": False,
        "changed_from_defaults": {},
        "detector": None,
    }
    warm = settings_json(tmp_path / "warm")
    assert warm["detector_digest"] == digest and warm["config"] == str(configs["warmer"])
    assert warm["changed_from_defaults"] == {
        "thermal_bands.cold_stress.threshold": {"value": 37.0, "default": 36.5}
    }
    assert warm["detector"]["thermal_bands"]["cold_stress"]["threshold"] == 37.0
    # the contract's files keep their DESIGN.md header as their first line
    with (tmp_path / "warm" / "alerts.csv").open() as fh:
        assert fh.readline().startswith("device,kind,start,end,extreme_c")


def test_analyze_with_longer_minimum_sessions_and_an_axillary_offset(ward, tmp_path):
    _, samples, configs, _ = ward
    kmc("analyze", samples, "--tz", TZ, "--out", tmp_path / "default")
    kmc("analyze", samples, "--tz", TZ, "--out", tmp_path / "longer", "--config", configs["longer"])
    kmc("analyze", samples, "--tz", TZ, "--out", tmp_path / "offset", "--config", configs["offset"])
    default = read(tmp_path / "default" / "sessions.csv")
    longer = read(tmp_path / "longer" / "sessions.csv")
    assert any(float(s["duration_min"]) < 60 for s in default)
    assert len(longer) < len(default) and min(float(s["duration_min"]) for s in longer) >= 60
    assert settings_json(tmp_path / "longer")["detector_digest"] == digest_of(
        {"min_session_s": 3600}
    )

    def hyperthermia(folder: str) -> list[dict[str, str]]:
        return [a for a in read(tmp_path / folder / "alerts.csv") if a["kind"] == "hyperthermia"]

    # +0.5 C: the baby's 37.1 C chest skin is judged 37.6 C, above 37.5
    assert len(hyperthermia("offset")) > len(hyperthermia("default"))
    assert min(float(a["extreme_c"]) for a in hyperthermia("offset")) > 37.5
    assert settings_json(tmp_path / "offset")["detector_digest"] == digest_of(
        {"axillary_offset_c": 0.5}
    )


def test_report_counts_draws_and_names_the_settings(ward, tmp_path):
    _, samples, configs, _ = ward
    said = kmc("report", samples, "--tz", TZ, "--out", tmp_path / "default")
    assert f"detector settings {DEFAULT_DIGEST} (the defaults)" in said
    kmc("report", samples, "--tz", TZ, "--out", tmp_path / "warm", "--config", configs["warmer"])
    digest = digest_of({"thresholds_c": {"cold_stress": 37.0}})

    def thermal(folder: str) -> int:
        return sum(int(i["thermal_alerts"]) for i in read(tmp_path / folder / "infants.csv"))

    assert thermal("warm") > thermal("default") > 0
    page = (tmp_path / "warm" / "report.html").read_text()
    assert f"Detector settings {digest} ([detector] of {configs['warmer']})" in page
    assert "thermal_bands.cold_stress.threshold = 37 (default 36.5)" in page
    assert "cold stress below 37.0 C" in page
    plain = (tmp_path / "default" / "report.html").read_text()
    assert f"Detector settings {DEFAULT_DIGEST} (the defaults); every value the default" in plain
    assert "cold stress below 36.5 C" in plain and digest not in plain
    for folder, want in (("default", DEFAULT_DIGEST), ("warm", digest)):
        meta = pq.read_schema(tmp_path / folder / "alerts.parquet").metadata
        assert meta[b"kmc_sense.detector_digest"].decode() == want
        record = json.loads(meta[b"kmc_sense.detector_settings"])
        assert record == settings_json(tmp_path / folder) and record["detector_digest"] == want


def test_the_temperature_plot_draws_the_bands_where_the_reading_crosses_them(ward):
    """Detection is on infant_c + axillary_offset_c and the plot shows infant_c: each band's
    line lies at its threshold less the offset, labelled with both."""
    _, samples, _, _ = ward
    moved = DetectorConfig.from_mapping(
        {"axillary_offset_c": 0.5, "thresholds_c": {"cold_stress": 37.0}}
    )
    lines = {}
    for name, cfg in (("default", DetectorConfig()), ("moved", moved)):
        detected = SampleReader(samples).consume(lambda chunks, cfg=cfg: detect_period(chunks, cfg))
        strap = straps(detected, zone(TZ))[0]
        ax = trace_figure(strap, TZ, cfg).axes[0]
        levels = sorted(ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_linestyle() == ":")
        labels = {t.get_text() for t in ax.texts}
        lines[name] = (levels, labels)
    assert lines["default"][0] == [36.0, 36.5, 37.5]  # severe hypothermia (32) is off the axis
    assert {"36.5 cold stress", "36.0 moderate", "37.5 hyperthermia"} <= lines["default"][1]
    assert lines["moved"][0] == pytest.approx([35.5, 36.5, 37.0])
    assert {
        "36.5 cold stress (37.0 - 0.5 offset)",
        "35.5 moderate (36.0 - 0.5 offset)",
        "37.0 hyperthermia (37.5 - 0.5 offset)",
    } <= lines["moved"][1]


def test_dhis2_export_counts_with_the_settings_and_comments_their_digest(ward, tmp_path):
    _, samples, configs, _ = ward
    common = ("export", "dhis2", samples, "--mapping", MAPPING, "--tz", TZ)
    said = kmc(*common, "--out", tmp_path / "default.json")
    assert f"detector settings {DEFAULT_DIGEST}" in said
    kmc(*common, "--out", tmp_path / "warm.json", "--config", configs["warmer"])
    digest = digest_of({"thresholds_c": {"cold_stress": 37.0}})
    docs = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in ("default", "warm")}
    for name, want in (("default", DEFAULT_DIGEST), ("warm", digest)):
        jsonschema.validate(docs[name], DHIS2_SCHEMA)  # a comment is a data value's own field
        assert {v["comment"] for v in docs[name]["dataValues"]} == {
            f"kmc-sense detector settings {want}"
        }

    from kmc_analysis.dhis2_metadata import default_data_elements

    thermal = default_data_elements()["thermal_alerts"][0]  # the mapping's default element

    def alerts(doc: dict) -> int:
        return sum(int(v["value"]) for v in doc["dataValues"] if v["dataElement"] == thermal)

    assert alerts(docs["warm"]) > alerts(docs["default"]) > 0


def test_fhir_export_tags_the_digest_and_moves_the_reference_range(ward, tmp_path):
    _, samples, configs, _ = ward
    common = ("export", "fhir", samples, "--every-min", "60", "--from", "2026-03-03", "--tz", TZ)
    kmc(*common, "--out", tmp_path / "default.json")
    said = kmc(*common, "--out", tmp_path / "offset.json", "--config", configs["offset"])
    digest = digest_of({"axillary_offset_c": 0.5})
    assert f"detector settings {digest}" in said
    observations = {
        n: [
            e["resource"]
            for e in json.loads((tmp_path / f"{n}.json").read_text())["entry"]
            if e["resource"]["resourceType"] == "Observation"
        ]
        for n in ("default", "offset")
    }
    # the temperatures with a value hold the range; every Observation (days, sessions and
    # alert episodes too, which the settings make) holds the tag
    entries = {
        n: [o for o in obs if "valueQuantity" in o and o["code"]["coding"][0]["code"] == "150364"]
        for n, obs in observations.items()
    }
    assert entries["default"]
    for name, want, (low, high) in (
        ("default", DEFAULT_DIGEST, (36.5, 37.5)),
        ("offset", digest, (36.0, 37.0)),  # judged 0.5 C warmer: the range on the reading falls
    ):
        for obs in observations[name]:
            Observation.model_validate(obs)  # tag and reference range as FHIR R4(B) allows
            assert obs["meta"]["tag"] == [
                {
                    "system": "urn:kmc-sense:detector-settings",
                    "code": want,
                    "display": f"kmc-sense detector settings {want}",
                }
            ]
        for obs in entries[name]:
            (rr,) = obs["referenceRange"]
            assert (rr["low"]["value"], rr["high"]["value"]) == (low, high)
            assert rr["low"]["code"] == "Cel" and rr["type"]["coding"][0]["code"] == "normal"
            assert want in rr["text"]
    assert "0.5 C axillary offset" in entries["offset"][0]["referenceRange"][0]["text"]
    # the readings themselves are the strap's: no setting changes them
    values = {n: [o["valueQuantity"]["value"] for o in e] for n, e in entries.items()}
    assert values["offset"] == values["default"]


def test_validate_scores_the_detector_with_the_settings(ward, tmp_path):
    _, samples, configs, log = ward
    said = kmc("validate", samples, log, "--tz", TZ, "--out", tmp_path / "default")
    assert f"detector settings {DEFAULT_DIGEST} (the defaults)" in said
    moved = kmc(
        "validate",
        samples,
        log,
        "--tz",
        TZ,
        "--out",
        tmp_path / "longer",
        "--config",
        configs["longer"],
    )
    digest = digest_of({"min_session_s": 3600})
    assert f"detector settings {digest} ([detector] of {configs['longer']})" in moved
    default = read(tmp_path / "default" / "agreement.csv")[0]
    longer = read(tmp_path / "longer" / "agreement.csv")[0]
    # the observer logged every true session; the strap now calls the short ones handling
    assert int(longer["missed"]) > int(default["missed"])
    assert float(longer["detected_hours"]) < float(default["detected_hours"])
    assert (default["detector_digest"], longer["detector_digest"]) == (DEFAULT_DIGEST, digest)
    assert settings_json(tmp_path / "longer")["detector_digest"] == digest


def gateway_file(tmp_path: Path, detector: str, password_file: bool = True) -> Path:
    """deploy/gateway.toml as a ward has it ([gateway], [mqtt], two [[straps]]), with a [ble]
    section and `detector` appended."""
    text = (ROOT / "deploy" / "gateway.toml").read_text()
    if not password_file:  # for the gateway's own loader, which reads the password file
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("password_file"))
    path = tmp_path / ("gateway.toml" if password_file else "gateway-nopw.toml")
    path.write_text(text + '\n[ble]\nhci = "usb:0"\n\n' + detector)
    return path


def test_a_gateways_whole_config_file_is_taken_as_it_is(ward, tmp_path):
    _, samples, _, _ = ward
    detector = "[detector]\nmin_session_s = 3600\n\n[detector.thresholds_c]\ncold_stress = 37.0\n"
    path = gateway_file(tmp_path, detector)
    said = kmc("analyze", samples, "--tz", TZ, "--out", tmp_path / "out", "--config", path)
    # the same settings as the gateway reads from that file
    gateway = load_config(gateway_file(tmp_path, detector, password_file=False)).detector
    want = digest_of({"min_session_s": 3600, "thresholds_c": {"cold_stress": 37.0}})
    assert gateway.digest() == want
    assert f"detector settings {want} ([detector] of {path})" in said
    assert min(float(s["duration_min"]) for s in read(tmp_path / "out" / "sessions.csv")) >= 60
    # a gateway file without [detector]: the defaults, and the summary says why
    plain = ROOT / "deploy" / "gateway.toml"
    said = kmc("analyze", samples, "--tz", TZ, "--out", tmp_path / "plain", "--config", plain)
    assert (
        f"detector settings {DEFAULT_DIGEST} (the defaults: {plain} has no [detector] section)"
        in said
    )
    assert settings_json(tmp_path / "plain")["config"] == str(plain)


BAD_FILES = [
    # (file text or None for no file, what the message says after the file's name)
    (None, ": file not found"),
    ("[detector\nbridge_s = 300\n", ": not valid TOML"),
    ("detector = 300\n", ": [detector] must be a table"),
    ("[detector]\nbridge = 300\n", " [detector]: unknown detector setting(s): bridge (known:"),
    ("[detector]\nbridge_s = -1\n", " [detector]: bridge_s must be >= 0, got -1.0"),
    ('[detector]\nbridge_s = "5 min"\n', " [detector]: detector setting bridge_s must be a number"),
    (
        "[detector.thresholds_c]\ncold_stress = 29.0\n",
        " [detector]: detector thresholds_c.cold_stress must be within 30.0-40.0 C, got 29.0",
    ),
    (
        "[detector.thresholds_c]\ncold = 36.0\n",
        " [detector]: detector thresholds_c: unknown kind(s) cold",
    ),
    (
        "[detector.thresholds_c]\ncold_stress = 35.5\n",
        " [detector]: detector thresholds_c must rise from severe hypothermia to hyperthermia",
    ),
]


@pytest.mark.parametrize(("text", "said"), BAD_FILES)
def test_a_bad_config_file_is_one_line_naming_file_and_key(ward, tmp_path, text, said):
    _, samples, _, _ = ward
    path = tmp_path / "detector.toml"
    if text is not None:
        path.write_text(text)
    r = run_kmc("analyze", str(samples), "--out", str(tmp_path / "out"), "--config", str(path))
    assert r.returncode == 2
    assert r.stderr.startswith("kmc analyze: error: ") and r.stderr.count("\n") == 1
    assert f"{path}{said}" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()  # stopped before any output


@pytest.mark.parametrize(
    "command",
    [
        ("report", "{samples}", "--out", "{out}"),
        ("export", "dhis2", "{samples}", "--mapping", str(MAPPING), "--out", "{out}/x.json"),
        ("export", "fhir", "{samples}", "--out", "{out}/x.json"),
        ("validate", "{samples}", "{log}", "--out", "{out}"),
    ],
)
def test_every_command_refuses_a_bad_config_file_by_name(ward, tmp_path, command):
    _, samples, _, log = ward
    path = tmp_path / "detector.toml"
    path.write_text("[detector.thresholds_c]\nhyperthermia = 41\n")
    fill = {"samples": samples, "log": log, "out": tmp_path / "out"}
    r = run_kmc(*(part.format(**fill) for part in command), "--config", str(path))
    assert r.returncode == 2, r.stderr
    assert (
        f"kmc {command[0]}: error: {path} [detector]: detector thresholds_c.hyperthermia must be "
        "within 30.0-40.0 C, got 41" in r.stderr
    )
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()
