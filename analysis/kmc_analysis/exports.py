"""Exports for health information systems: DHIS2 aggregate data and a FHIR R4 Bundle.

DHIS2 (national HMIS in most countries that run KMC programmes) takes monthly aggregate counts
per organisation unit as a `dataValueSets` JSON document. We export counts rather than shares,
so DHIS2 can aggregate facilities and compute its own indicators (numerator / denominator):

  newborns_started_kmc      newborns whose first KMC session in the data starts in the month
                            (any birth weight; the WHO RMNCAH package's RMNCAH_NN_KMC, see
                            `newborns_started_kmc` for the definition)
  eligible_infants          eligible infants (< 2000 g) with at least one observed day
  infants_reaching_8h/18h/20h  of those, infants whose mean KMC hours over the month's observed
                            days reach the band
  infant_days               observed infant-days of eligible infants
  infant_days_ge_8h/18h/20h of those, days meeting the band
  kmc_hours                 KMC hours of eligible infants on observed days (sum)
  thermal_alerts            thermal alert episodes of eligible infants (each WHO band counted)
  baby_days                 monitored time of eligible infants, in days (alerts per baby-day)

The mapping file says which org unit each site/ward is and, optionally, which DHIS2 data element
(and category option combo) each count goes to; only mapped counts are exported. Without a
`[dhis2.data_elements]` table the counts go to the data elements a country already has or can
import as they are: newborns started on KMC to the RMNCAH package's Do6GGAEz16D, every other
count to the data element `kmc export dhis2-metadata` defines for it (dhis2_metadata.py). Each data value's
`comment` names the detector settings its count was made with (`kmc-sense detector settings
<digest>`, 40 characters): a data value set has no other place for it (its top level holds only
DHIS2's own fields), and a comment is a data value's own field, stored with the value and shown
beside it in data entry.

FHIR (fhir_phd.py): a transaction Bundle after the HL7 Personal Health Device IG: body
temperature as PhdNumericObservation (MDC_TEMP_BODY and LOINC 8310-5, UCUM `Cel`, also the
vital-signs bodytemp profile), one per strap per interval (the median of the readings while the
strap was worn, or a `dataAbsentReason` when it sent samples but no valid reading while worn),
the strap as a PhdDevice and the gateway as a PhgDevice, the infant pseudonym as the subject,
and the days' KMC hours, the sessions and the thermal alert episodes as base R4 Observations. Each
Observation is a PUT with an id derived from strap, kind and time, so sending the same export twice
updates instead of duplicating. The values are the strap's readings, which no detector setting
changes; what the settings say about them is each temperature's `referenceRange` (type
`normal`): from the cold stress to the hyperthermia threshold, moved onto the chest-skin reading
(threshold - axillary_offset_c, as the detector judges infant_c + axillary_offset_c), its text
naming the thresholds, the offset and the digest. The digest is also a `meta.tag` (a Coding of
system `urn:kmc-sense:detector-settings`) on every Observation: tags are FHIR R4's place for marks
that sort resources by how they were made without changing their meaning, and a server keeps
them with the resource and can search by them (`_tag`), so the Observations exported under one
set of settings can be found again.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmc_host.detect import ConfigError, zone
from kmc_host.tomlconf import get, read_toml, section, unknown

from .coverage import BANDS_H
from .dhis2_metadata import default_data_elements
from .fhir_phd import fhir_bundle as fhir_bundle
from .fhir_phd import reference_range as reference_range
from .fhir_phd import temperature_points as temperature_points
from .report import Report
from .settings import Settings

# -- DHIS2

COUNTS = (
    "newborns_started_kmc",
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
    [dhis2.data_elements]               # optional (default: `default_data_elements()`)
    eligible_infants = "kmcElig0001"    # count = "dataElement" or "dataElement.categoryOptionCombo"
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
    if "data_elements" not in d:
        return Dhis2Mapping(org_unit, org_units, default_data_elements(), data_set)
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


ALREADY_THERE_S = 3600.0  # data starting this soon after --from: on the ward before it


def newborns_started_kmc(
    first_kmc: dict[str, float],
    first_data: dict[str, float],
    tz: str,
    since: float | None,
) -> tuple[dict[str, int], list[str]]:
    """Newborns started on KMC per month (`YYYYMM`, local): each infant counts once, in the
    month its first KMC session in the data starts, whatever its birth weight (the RMNCAH data
    element counts every newborn initiated on KMC, against all live births).

    `first_kmc` and `first_data`: per infant, the start of its first session (NaN: none) and of
    its first data. `since` is the start of the period read (--from), or None when the data is
    the infants' whole record. When a period is given, an infant whose data begins within
    ALREADY_THERE_S of its start was on the ward already: its KMC may have begun before the
    period, so it is not counted as started, and is returned in the second list instead. An
    infant whose strap is first put on later in the period counts, even when KMC starts at once."""
    tzinfo = zone(tz)
    out: dict[str, int] = {}
    left_out = []
    for infant, start in sorted(first_kmc.items()):
        if not np.isfinite(start):
            continue
        if since is not None and first_data[infant] < since + ALREADY_THERE_S:
            left_out.append(infant)
            continue
        month = dt.datetime.fromtimestamp(start, tzinfo).strftime("%Y%m")
        out[month] = out.get(month, 0) + 1
    return out, left_out


def report_newborns_started_kmc(rep: Report) -> tuple[dict[str, int], list[str]]:
    """`newborns_started_kmc` of the report's infants (the roster's, or every strap without
    one)."""
    infants = set(rep.tables["infants"].columns["device"].tolist())
    first_kmc, first_data = {}, {}
    for s in rep.straps:
        r = s.result
        if s.device not in infants or r.monitored_start.size == 0:
            continue
        first_kmc[s.device] = float(r.session_start[0]) if r.session_start.size else np.nan
        first_data[s.device] = float(r.monitored_start[0])
    since = rep.period[0] if rep.period else None
    return newborns_started_kmc(first_kmc, first_data, rep.tz, since)


def monthly_counts(rep: Report) -> dict[str, dict[str, float]]:
    """The counts above per month (`YYYYMM`, local calendar): newborns started on KMC of all
    the report's infants, the others of its eligible infants."""
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
    thermal = np.isin(np.asarray(alerts["kind"], dtype=object).astype(str), rep.thermal_kinds())
    started, _ = report_newborns_started_kmc(rep)
    out: dict[str, dict[str, float]] = {}
    for month in sorted(set(months.tolist()) | set(started)):
        in_month = months == month
        obs = in_month & observed
        row: dict[str, float] = {"newborns_started_kmc": started.get(month, 0)}
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
    """A DHIS2 `dataValueSets` import document (JSON) for the report's site/ward and months,
    each value's comment naming the report's detector settings."""
    unit = mapping.org_units.get(f"{rep.site}/{rep.ward}", mapping.org_unit)
    comment = dhis2_comment(rep.settings)
    values = []
    for month, counts in monthly_counts(rep).items():
        for key, (element, combo) in mapping.data_elements.items():
            value: dict[str, Any] = {
                "dataElement": element,
                "period": month,
                "orgUnit": unit,
                "value": _dhis2_value(counts[key]),
                "comment": comment,
            }
            if combo:
                value["categoryOptionCombo"] = combo
            values.append(value)
    doc: dict[str, Any] = {}
    if mapping.data_set:
        doc["dataSet"] = mapping.data_set
    doc["dataValues"] = values
    return doc


def dhis2_comment(settings: Settings) -> str:
    return f"kmc-sense detector settings {settings.digest}"


def _dhis2_value(x: float) -> str:
    """DHIS2 takes values as strings; whole numbers without a decimal point."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# -- FHIR R4: fhir_phd.py (the Personal Health Device IG's profiles); its entry points here too


def write_json(doc: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return path
