"""Exports for health information systems: DHIS2 aggregate data and FHIR R4 Observations.

DHIS2 (national HMIS in most countries that run KMC programmes) takes monthly aggregate counts
per organisation unit as a `dataValueSets` JSON document. We export counts rather than shares,
so DHIS2 can aggregate facilities and compute its own indicators (numerator / denominator):

  eligible_infants          eligible infants (< 2000 g) with at least one observed day
  infants_reaching_8h/18h/20h  of those, infants whose mean KMC hours over the month's observed
                            days reach the band
  infant_days               observed infant-days of eligible infants
  infant_days_ge_8h/18h/20h of those, days meeting the band
  kmc_hours                 KMC hours of eligible infants on observed days (sum)
  thermal_alerts            thermal alert episodes of eligible infants (each WHO band counted)
  baby_days                 monitored time of eligible infants, in days (alerts per baby-day)

The mapping file says which DHIS2 data element (and optional category option combo) each count
goes to and which org unit each site/ward is; only mapped counts are exported.

FHIR: body temperature as Observations (vital-signs profile: LOINC 8310-5, UCUM `Cel`), one per
strap per interval (the median of the readings while the strap was worn), with the strap as the
Device and the infant pseudonym as the subject, in a transaction Bundle of PUTs with ids derived
from strap and time, so sending the same export twice updates instead of duplicating.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmc_host.clinical import THERMAL
from kmc_host.detect import ConfigError, zone
from kmc_host.samples import Samples
from kmc_host.timefmt import iso_utc
from kmc_host.tomlconf import get, read_toml, section, unknown

from .coverage import BANDS_H
from .report import Report

# -- DHIS2

COUNTS = (
    "eligible_infants",
    *(f"infants_reaching_{b:g}h" for b in BANDS_H),
    "infant_days",
    *(f"infant_days_ge_{b:g}h" for b in BANDS_H),
    "kmc_hours",
    "thermal_alerts",
    "baby_days",
)
UID = re.compile(r"[A-Za-z][A-Za-z0-9]{10}")  # DHIS2 identifiers: 11 characters, letter first


@dataclass(frozen=True)
class Dhis2Mapping:
    org_unit: str  # for every site/ward not listed in org_units
    org_units: dict[str, str]  # "site/ward" -> org unit UID
    data_elements: dict[str, tuple[str, str | None]]  # count -> (data element, category combo)
    data_set: str | None = None


def load_dhis2_mapping(path: str | Path) -> Dhis2Mapping:
    """The mapping TOML (see deploy/dhis2-mapping.example.toml); errors name file and key.

    [dhis2]
    data_set = "kmcMonthly1"            # optional
    org_unit = "DiszpKrYNg8"            # default org unit
    [dhis2.org_units]                   # optional, per "site/ward"
    "site1/ward-a" = "DiszpKrYNg8"
    [dhis2.data_elements]               # count = "dataElement" or "dataElement.categoryOptionCombo"
    eligible_infants = "kmcElig0001"
    infants_reaching_18h = "kmcReach018"
    """
    path = Path(path)
    raw = read_toml(path)
    unknown(raw, {"dhis2"}, str(path))
    where = f"{path} [dhis2]"
    d = section(raw, "dhis2", str(path))
    unknown(d, {"data_set", "org_unit", "org_units", "data_elements"}, where)

    def uid(value: str, what: str) -> str:
        if not UID.fullmatch(value):
            raise ConfigError(
                f"{where}: {what} {value!r} is not a DHIS2 UID (11 characters, letter first)"
            )
        return value

    data_set = get(d, "data_set", str, where, None)
    if data_set is not None:
        uid(data_set, "data_set")
    org_unit = uid(get(d, "org_unit", str, where), "org_unit")
    units = get(d, "org_units", dict, where, {})
    org_units = {str(k): uid(get(units, k, str, where), f"org_units.{k}") for k in units}
    elements = get(d, "data_elements", dict, where)
    unknown(elements, set(COUNTS), f"{where}.data_elements")
    if not elements:
        raise ConfigError(f"{where}.data_elements: map at least one of {', '.join(COUNTS)}")
    mapped: dict[str, tuple[str, str | None]] = {}
    for key in elements:
        text = get(elements, key, str, f"{where}.data_elements")
        de, _, coc = text.partition(".")
        mapped[key] = (uid(de, key), uid(coc, f"{key} category option combo") if coc else None)
    return Dhis2Mapping(org_unit, org_units, mapped, data_set)


def monthly_counts(rep: Report) -> dict[str, dict[str, float]]:
    """The counts above per month (`YYYYMM`, local calendar) of the report's eligible infants."""
    daily = rep.tables["daily"].columns
    infants = rep.tables["infants"].columns
    eligible = {str(d) for d, e in zip(infants["device"], infants["eligible"], strict=True) if e}
    devices = np.asarray(daily["device"], dtype=object).astype(str)
    dates = np.asarray(daily["date"], dtype=object).astype(str)
    observed = np.asarray(daily["observed"], bool) & np.isin(devices, sorted(eligible))
    kmc = np.asarray(daily["kmc_hours"], float)
    mon = np.asarray(daily["monitored_hours"], float)
    months = np.array([d[:4] + d[5:7] for d in dates.tolist()], dtype=str)
    tz = zone(rep.tz)
    alerts = rep.tables["alerts"].columns
    alert_month = np.array(
        [dt.datetime.fromtimestamp(float(t), tz).strftime("%Y%m") for t in alerts["start"]],
        dtype=str,
    )
    alert_dev = np.asarray(alerts["device"], dtype=object).astype(str)
    thermal = np.isin(np.asarray(alerts["kind"], dtype=object).astype(str), THERMAL)
    out: dict[str, dict[str, float]] = {}
    for month in sorted(set(months.tolist())):
        in_month = months == month
        obs = in_month & observed
        row: dict[str, float] = {}
        per_infant = [kmc[obs & (devices == d)].mean() for d in sorted(set(devices[obs].tolist()))]
        row["eligible_infants"] = len(per_infant)
        for b in BANDS_H:
            row[f"infants_reaching_{b:g}h"] = int(sum(m >= b for m in per_infant))
        row["infant_days"] = int(obs.sum())
        for b in BANDS_H:
            row[f"infant_days_ge_{b:g}h"] = int((kmc[obs] >= b).sum())
        row["kmc_hours"] = round(float(kmc[obs].sum()), 1)
        elig_month = in_month & np.isin(devices, sorted(eligible))
        row["baby_days"] = round(float(mon[elig_month].sum()) / 24.0, 2)
        row["thermal_alerts"] = int(
            (thermal & (alert_month == month) & np.isin(alert_dev, sorted(eligible))).sum()
        )
        out[month] = row
    return out


def dhis2_data_value_set(rep: Report, mapping: Dhis2Mapping) -> dict[str, Any]:
    """A DHIS2 `dataValueSets` import document (JSON) for the report's site/ward and months."""
    unit = mapping.org_units.get(f"{rep.site}/{rep.ward}", mapping.org_unit)
    values = []
    for month, counts in monthly_counts(rep).items():
        for key, (element, combo) in mapping.data_elements.items():
            value: dict[str, Any] = {
                "dataElement": element,
                "period": month,
                "orgUnit": unit,
                "value": _dhis2_value(counts[key]),
            }
            if combo:
                value["categoryOptionCombo"] = combo
            values.append(value)
    doc: dict[str, Any] = {}
    if mapping.data_set:
        doc["dataSet"] = mapping.data_set
    doc["dataValues"] = values
    return doc


def _dhis2_value(x: float) -> str:
    """DHIS2 takes values as strings; whole numbers without a decimal point."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# -- FHIR R4


LOINC_BODY_TEMPERATURE = "8310-5"
VITAL_SIGNS = "http://terminology.hl7.org/CodeSystem/observation-category"


def temperature_points(
    chunks: Iterator[tuple[str, Samples]], every_s: float
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per strap: interval start times and the median infant temperature while worn in each
    interval (intervals with no worn reading are left out). Chunks in time order per strap."""
    carry: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for device, chunk in chunks:
        ok = (chunk.worn == 1) & np.isfinite(chunk.infant_c)
        t = chunk.time[ok]
        v = chunk.infant_c[ok]
        if device in carry:
            t = np.concatenate((carry[device][0], t))
            v = np.concatenate((carry[device][1], v))
        if t.size == 0:
            continue
        bins = np.floor(t / every_s)
        done = bins < bins[-1]  # the last interval may go on in the next chunk
        carry[device] = (t[~done], v[~done])
        if done.any():
            out.setdefault(device, []).append(_medians(bins[done], v[done], every_s))
    for device, (t, v) in carry.items():
        if t.size:
            out.setdefault(device, []).append(_medians(np.floor(t / every_s), v, every_s))
    return {
        d: (np.concatenate([p[0] for p in ps]), np.concatenate([p[1] for p in ps]))
        for d, ps in out.items()
    }


def _medians(bins: np.ndarray, values: np.ndarray, every_s: float) -> tuple[np.ndarray, np.ndarray]:
    starts = np.flatnonzero(np.diff(bins, prepend=np.nan) != 0)
    meds = np.array([np.median(p) for p in np.split(values, starts[1:])])
    return bins[starts] * every_s, np.round(meds, 2)


def fhir_bundle(
    points: dict[str, tuple[np.ndarray, np.ndarray]],
    infants: dict[str, str],
    every_s: float,
) -> dict[str, Any]:
    """A FHIR R4 transaction Bundle of body-temperature Observations (PUT, idempotent)."""
    entries = []
    for device in sorted(points):
        times, temps = points[device]
        subject = infants.get(device) or f"strap-{device}"  # the profile requires a subject
        for t, c in zip(times.tolist(), temps.tolist(), strict=True):
            oid = f"kmc-{_fhir_id(device)}-{int(t)}"
            obs: dict[str, Any] = {
                "resourceType": "Observation",
                "id": oid,
                "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/bodytemp"]},
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {"system": VITAL_SIGNS, "code": "vital-signs", "display": "Vital Signs"}
                        ]
                    }
                ],
                "code": {
                    "coding": [
                        {
                            "system": "http://loinc.org",
                            "code": LOINC_BODY_TEMPERATURE,
                            "display": "Body temperature",
                        }
                    ],
                    "text": "Infant chest skin temperature (KMC Sense strap)",
                },
                "effectivePeriod": {
                    "start": iso_utc(t, truncate=True),
                    "end": iso_utc(t + every_s, truncate=True),
                },
                "valueQuantity": {
                    "value": c,
                    "unit": "Cel",
                    "system": "http://unitsofmeasure.org",
                    "code": "Cel",
                },
                "device": {"reference": f"Device/{_fhir_id(device)}", "display": device},
                "note": [{"text": f"median of the readings while worn over {every_s / 60:g} min"}],
            }
            obs["subject"] = {"reference": f"Patient/{_fhir_id(subject)}", "display": subject}
            entries.append(
                {
                    "fullUrl": f"Observation/{oid}",
                    "resource": obs,
                    "request": {"method": "PUT", "url": f"Observation/{oid}"},
                }
            )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _fhir_id(text: str) -> str:
    """FHIR ids: A-Z a-z 0-9 - . only, 1-64 characters."""
    return re.sub(r"[^A-Za-z0-9\-.]", "-", text)[:64] or "unknown"


def write_json(doc: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return path
