"""`kmc export fhir`: a FHIR R4 transaction Bundle after the HL7 Personal Health Device IG.

What the Bundle holds (docs/exports.md has an excerpt of each):

  Device (PhgDevice)      the ward's gateway: the PHG that received the strap's samples
  Device (PhdDevice)      each strap, with what its Device Information service reports
                          (firmware/ble_service.py): manufacturer, model, serial = strap id
  Patient (PhdPatient)    each infant pseudonym, created only if the server has none
                          (POST with ifNoneExist on the pseudonym's identifier)
  Observation             per strap per interval (`--every-min`): body temperature,
    (PhdNumericObservation  MDC_TEMP_BODY and LOINC 8310-5 in UCUM Cel, the median of the
     and vital-signs        readings while worn; where the strap sent samples but none was a
     bodytemp)              valid reading while worn, `dataAbsentReason` instead of a value
  Observation (R4)        per strap per local calendar day: KMC hours, monitored hours, sessions
  Observation (R4)        per KMC session: its period and duration
  Observation (R4)        per thermal alert episode: its period, band and extreme temperature

Only the temperature Observations claim a PHD profile: they are readings of the strap, as the
IG maps a thermometer's. Days, sessions and alert episodes are what the detector derived from
many readings, with codes of our own (`urn:kmc-sense:observation`), so they follow the base R4
Observation and say so.

What the samples do not carry is not invented. The strap's firmware revision is in its Device
Information service and in the Status the gateway reads at each visit, but neither the samples
table nor InfluxDB keeps it; PhdDevice requires a version (1..*), so the Device has the firmware
revision's entry with no value and the data-absent-reason extension `unknown` on it (FHIR's way
to say a required value is not known). The same for the gateway's software version. Neither
Device has an EUI-64 system id nor a Bluetooth address (not in the samples either): each is
identified by the strap id, or by site/ward for the gateway.

Every Observation is a PUT to an id derived from strap, kind and time, so sending the same export
twice updates instead of duplicating; every Observation carries the detector settings' digest in
`meta.tag` (system `urn:kmc-sense:detector-settings`), and the temperatures the settings' normal
range in `referenceRange` (exports.py has the reasons).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

from kmc_host.clinical import (
    COLD_STRESS,
    HYPERTHERMIA,
    MODERATE_HYPOTHERMIA,
    SEVERE_HYPOTHERMIA,
    THERMAL,
)
from kmc_host.detect import zone
from kmc_host.samples import Samples
from kmc_host.timefmt import iso_utc

from .report import Report
from .settings import Settings
from .sources import SampleSource

T = TypeVar("T")

# -- code systems and profiles

MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PHD_CATEGORY = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DATA_ABSENT_EXT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
GATEWAY_EXT = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
REFERENCE_RANGE_MEANING = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"
SETTINGS_TAG = "urn:kmc-sense:detector-settings"
KMC_CODES = "urn:kmc-sense:observation"  # our codes for what the detector derives
KMC_CATEGORY = "urn:kmc-sense:observation-category"
STRAP_ID = "urn:kmc-sense:strap-id"
GATEWAY_ID = "urn:kmc-sense:gateway"
INFANT_ID = "urn:kmc-sense:infant"

PHD = "http://hl7.org/fhir/uv/phd/StructureDefinition/"
PHD_NUMERIC = PHD + "PhdNumericObservation"
PHD_DEVICE = PHD + "PhdDevice"
PHG_DEVICE = PHD + "PhgDevice"
PHD_PATIENT = PHD + "PhdPatient"
BODYTEMP = "http://hl7.org/fhir/StructureDefinition/bodytemp"
R4_OBSERVATION = "http://hl7.org/fhir/StructureDefinition/Observation"

LOINC_BODY_TEMPERATURE = "8310-5"
MDC_TEMP_BODY = "150364"
MDC_MOC_VMS_MDS_SIMP = "65573"  # PhdDevice.type: a PHD
MDC_MOC_VMS_MDS_AHD = "531981"  # PhgDevice.type: a PHG
MDC_DEV_SPEC_PROFILE_TEMP = "528392"  # the thermometer specialization
MDC_ID_PROD_SPEC_SW = "531975"
MDC_ID_PROD_SPEC_FW = "531976"

# The strap's Device Information service (firmware/ble_service.py: Manufacturer Name, Model
# Number; Serial Number is the strap id). tests/analysis/test_exports_fhir_phd.py reads them
# from the firmware source, so the two cannot drift apart.
STRAP_MANUFACTURER = "KMC Sense"
STRAP_MODEL = "KMC strap v1"
GATEWAY_MANUFACTURER = "KMC Sense"
GATEWAY_MODEL = "kmc gateway"

# Why an interval with samples has no temperature (dataAbsentReason codes)
NOT_WORN = "not-performed"  # the strap was off the baby all the interval: nothing measured
NO_READING = "error"  # worn, but the sensor gave no valid reading (infant_c missing)
ABSENT_TEXT = {
    NOT_WORN: "the strap was not worn in this interval: no skin temperature was measured",
    NO_READING: "the strap was worn but its sensor gave no valid reading in this interval",
}

# v3 interpretation of each WHO band's episode
BAND_INTERPRETATION = {
    COLD_STRESS: ("L", "Low"),
    MODERATE_HYPOTHERMIA: ("L", "Low"),
    SEVERE_HYPOTHERMIA: ("LL", "Critical low"),
    HYPERTHERMIA: ("H", "High"),
}
BAND_DISPLAY = {
    COLD_STRESS: "Cold stress",
    MODERATE_HYPOTHERMIA: "Moderate hypothermia",
    SEVERE_HYPOTHERMIA: "Severe hypothermia",
    HYPERTHERMIA: "Hyperthermia",
}


# -- temperatures per interval


class IntervalReadings:
    """Per strap, each interval of `every_s` in which the strap sent at least one sample: its
    start, the median infant temperature of the valid readings while worn (NaN when none), and
    when there is none, why (NOT_WORN or NO_READING; "" when there is a value). Intervals with
    no sample at all are not rows: nothing was received, so nothing is said about them.
    Fed chunk by chunk (`tap`), each strap's chunks in time order."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._carry: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._out: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def add(self, device: str, chunk: Samples) -> None:
        t, v, w = chunk.time, chunk.infant_c, chunk.worn
        if device in self._carry:
            ct, cv, cw = self._carry.pop(device)
            t, v, w = np.concatenate((ct, t)), np.concatenate((cv, v)), np.concatenate((cw, w))
        if t.size == 0:
            return
        bins = np.floor(t / self.every_s)
        done = bins < bins[-1]  # the last interval may go on in the next chunk
        self._carry[device] = (t[~done], v[~done], w[~done])
        if done.any():
            self._out.setdefault(device, []).append(self._intervals(bins[done], v[done], w[done]))

    def tap(self, chunks: Iterator[tuple[str, Samples]]) -> Iterator[tuple[str, Samples]]:
        """The chunks as they come, each also added here."""
        for device, chunk in chunks:
            self.add(device, chunk)
            yield device, chunk

    def result(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for device, (t, v, w) in self._carry.items():
            if t.size:
                part = self._intervals(np.floor(t / self.every_s), v, w)
                self._out.setdefault(device, []).append(part)
        self._carry = {}
        return {
            d: tuple(np.concatenate([p[k] for p in ps]) for k in range(3))  # type: ignore[misc]
            for d, ps in sorted(self._out.items())
        }

    def _intervals(
        self, bins: np.ndarray, values: np.ndarray, worn: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = np.flatnonzero(np.diff(bins, prepend=np.nan) != 0)
        meds, why = [], []
        for v, w in zip(np.split(values, starts[1:]), np.split(worn, starts[1:]), strict=True):
            ok = (w == 1) & np.isfinite(v)
            if ok.any():
                meds.append(float(np.median(v[ok])))
                why.append("")
            else:
                meds.append(np.nan)
                why.append(NO_READING if (w == 1).any() else NOT_WORN)
        return bins[starts] * self.every_s, np.round(np.array(meds), 2), np.array(why, dtype=str)


def temperature_points(
    chunks: Iterator[tuple[str, Samples]], every_s: float
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`IntervalReadings` of all the chunks: per strap (interval starts, medians, reasons)."""
    acc = IntervalReadings(every_s)
    for device, chunk in chunks:
        acc.add(device, chunk)
    return acc.result()


# -- pieces


def _celsius(value: float) -> dict[str, Any]:
    return {"value": round(value, 2), "unit": "Cel", "system": UCUM, "code": "Cel"}


def _hours(value: float) -> dict[str, Any]:
    return {"value": round(value, 3), "unit": "h", "system": UCUM, "code": "h"}


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"system": system, "code": code} | ({"display": display} if display else {})


def _concept(system: str, code: str, display: str | None = None, text: str | None = None):
    return {"coding": [_coding(system, code, display)]} | ({"text": text} if text else {})


def _kmc_categories() -> list[dict[str, Any]]:
    """The categories of the KMC day and session Observations: R4's therapy, and ours."""
    return [
        _concept(OBSERVATION_CATEGORY, "therapy", "Therapy"),
        _concept(KMC_CATEGORY, "kmc", "Kangaroo Mother Care"),
    ]


def fhir_id(text: str) -> str:
    """FHIR ids: A-Z a-z 0-9 - . only, 1-64 characters; a longer one is replaced by a digest
    of it (so two long ids cannot meet by truncation)."""
    clean = re.sub(r"[^A-Za-z0-9\-.]", "-", text) or "unknown"
    if len(clean) <= 64:
        return clean
    return "kmc-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def reference_range(settings: Settings) -> list[dict[str, Any]]:
    """The settings' normal range on the strap's reading: above the cold stress and below the
    hyperthermia threshold, each less the axillary offset (the detector judges infant_c +
    axillary_offset_c); [] when the settings have neither band."""
    cfg = settings.detector
    off = cfg.axillary_offset_c
    cold, hot = cfg.threshold_c(COLD_STRESS), cfg.threshold_c(HYPERTHERMIA)
    if cold is None and hot is None:
        return []
    said = [
        f"{name} ({side} {t:g} C)"
        for name, side, t in (("cold stress", "below", cold), ("hyperthermia", "above", hot))
        if t is not None
    ]
    limits: dict[str, Any] = {}
    if cold is not None:
        limits["low"] = _celsius(cold - off)
    if hot is not None:
        limits["high"] = _celsius(hot - off)
    judged = (
        f"this reading {'+' if off > 0 else '-'} {abs(off):g} C axillary offset"
        if off
        else "this reading"
    )
    text = (
        f"within the ward's thresholds of {' and '.join(said)}, judged on {judged} "
        f"(kmc-sense detector settings {settings.digest})"
    )
    meaning = _coding(REFERENCE_RANGE_MEANING, "normal", "Normal Range")
    return [limits | {"type": {"coding": [meaning]}, "text": text}]


def _unknown_version(kind_code: str, kind_display: str, text: str) -> dict[str, Any]:
    """A Device.version entry whose value is not known (PhdDevice and PhgDevice require one)."""
    return {
        "type": _concept(MDC, kind_code, kind_display, text),
        "_value": {"extension": [{"url": DATA_ABSENT_EXT, "valueCode": "unknown"}]},
    }


def _thermometer() -> list[dict[str, Any]]:
    """Device.specialization: the IG's thermometer specialization, as the IG asks for a device
    that is not an IEEE 11073 one (the strap serves Bluetooth's Health Thermometer service)."""
    return [
        {
            "systemType": _concept(MDC, MDC_DEV_SPEC_PROFILE_TEMP, "MDC_DEV_SPEC_PROFILE_TEMP"),
            "version": "1",
        }
    ]


def strap_device(device: str) -> dict[str, Any]:
    """The strap as a PhdDevice (no firmware revision: the samples do not carry it)."""
    return {
        "resourceType": "Device",
        "id": fhir_id(device),
        "meta": {"profile": [PHD_DEVICE]},
        "identifier": [{"system": STRAP_ID, "value": device}],
        "manufacturer": STRAP_MANUFACTURER,
        "serialNumber": device,
        "modelNumber": STRAP_MODEL,
        "type": _concept(MDC, MDC_MOC_VMS_MDS_SIMP, "MDC_MOC_VMS_MDS_SIMP", "Simple PHD"),
        "specialization": _thermometer(),
        "version": [
            _unknown_version(
                MDC_ID_PROD_SPEC_FW,
                "MDC_ID_PROD_SPEC_FW",
                "Firmware revision (the strap reports it; the samples do not keep it)",
            )
        ],
    }


def gateway_id(site: str, ward: str) -> str:
    return fhir_id("-".join(["kmc-gateway", *(p for p in (site, ward) if p)]))


def gateway_device(site: str, ward: str) -> dict[str, Any]:
    """The ward's gateway as a PhgDevice, identified by site/ward (no software version: the
    samples do not say which gateway release collected them)."""
    name = "/".join(p for p in (site, ward) if p) or "kmc-sense"
    return {
        "resourceType": "Device",
        "id": gateway_id(site, ward),
        "meta": {"profile": [PHG_DEVICE]},
        "identifier": [{"system": GATEWAY_ID, "value": name}],
        "manufacturer": GATEWAY_MANUFACTURER,
        "modelNumber": GATEWAY_MODEL,
        "type": _concept(
            MDC,
            MDC_MOC_VMS_MDS_AHD,
            "MDC_MOC_VMS_MDS_AHD",
            "Application Hosting Device, a.k.a. PHG",
        ),
        "specialization": _thermometer(),
        "version": [
            _unknown_version(
                MDC_ID_PROD_SPEC_SW,
                "MDC_ID_PROD_SPEC_SW",
                "Software revision (not recorded with the samples)",
            )
        ],
    }


def patient_url(pseudonym: str) -> str:
    """The Patient entry's fullUrl: the same for a pseudonym on every run."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{INFANT_ID}|{pseudonym}"))


def patient_entry(pseudonym: str) -> dict[str, Any]:
    """A Patient with the pseudonym as its only identifier, created only if the server has no
    Patient with it (a PUT would overwrite the EHR's own record)."""
    return {
        "fullUrl": patient_url(pseudonym),
        "resource": {
            "resourceType": "Patient",
            "meta": {"profile": [PHD_PATIENT]},
            "identifier": [{"system": INFANT_ID, "value": pseudonym}],
        },
        "request": {
            "method": "POST",
            "url": "Patient",
            "ifNoneExist": f"identifier={INFANT_ID}|{pseudonym}",
        },
    }


def _put(resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{resource['resourceType']}/{resource['id']}"
    return {"fullUrl": url, "resource": resource, "request": {"method": "PUT", "url": url}}


def _local(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


# -- the Bundle


class _Builder:
    def __init__(self, rep: Report, every_s: float) -> None:
        self.rep = rep
        self.every_s = every_s
        settings = rep.settings
        self.tag = {
            "system": SETTINGS_TAG,
            "code": settings.digest,
            "display": f"kmc-sense detector settings {settings.digest}",
        }
        self.ranges = reference_range(settings)
        self.gateway = f"Device/{gateway_id(rep.site, rep.ward)}"
        self.subjects = {s.device: s.infant_id or f"strap-{s.device}" for s in rep.straps}

    def subject(self, device: str) -> dict[str, Any]:
        # the profiles require a subject: a strap with no known infant stands for its wearer
        name = self.subjects.get(device) or f"strap-{device}"
        return {"reference": patient_url(name), "display": name}

    def device(self, device: str) -> dict[str, Any]:
        return {"reference": f"Device/{fhir_id(device)}", "display": device}

    def _base(self, oid: str, profiles: list[str]) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "id": oid,
            "meta": {"profile": profiles, "tag": [self.tag]},
        }

    def temperature(self, device: str, t: float, c: float, why: str) -> dict[str, Any]:
        oid = fhir_id(f"kmc-{fhir_id(device)}-{int(t)}")
        obs = self._base(oid, [PHD_NUMERIC, BODYTEMP])
        obs |= {
            "extension": [{"url": GATEWAY_EXT, "valueReference": {"reference": self.gateway}}],
            "status": "final",
            "category": [
                _concept(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs"),
                _concept(PHD_CATEGORY, "phd", "PHD generated Observation"),
            ],
            "code": {
                "coding": [
                    _coding(MDC, MDC_TEMP_BODY, "MDC_TEMP_BODY"),
                    _coding(LOINC, LOINC_BODY_TEMPERATURE, "Body temperature"),
                ],
                "text": "Infant chest skin temperature (KMC Sense strap)",
            },
            "subject": self.subject(device),
            "effectivePeriod": {
                "start": iso_utc(t, truncate=True),
                "end": iso_utc(t + self.every_s, truncate=True),
            },
        }
        minutes = f"{self.every_s / 60:g} min"
        if why:
            obs["dataAbsentReason"] = _concept(DATA_ABSENT, why, text=ABSENT_TEXT[why])
        else:
            obs["valueQuantity"] = _celsius(c)
            if self.ranges:
                obs["referenceRange"] = self.ranges
        obs["device"] = self.device(device)
        obs["note"] = [
            {
                "text": f"median of the valid readings while worn over {minutes}"
                if not why
                else f"no value over {minutes}: {ABSENT_TEXT[why]}"
            }
        ]
        return obs

    def day(self, row: dict[str, Any], tz: dt.tzinfo) -> dict[str, Any]:
        device = str(row["device"])
        date = dt.date.fromisoformat(str(row["date"]))
        start = dt.datetime.combine(date, dt.time(), tz)
        end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tz)
        obs = self._base(fhir_id(f"kmc-{fhir_id(device)}-day-{date:%Y%m%d}"), [R4_OBSERVATION])
        obs |= {
            "status": "final",
            "category": _kmc_categories(),
            "code": _concept(
                KMC_CODES,
                "kmc-hours-per-day",
                "KMC hours in the local calendar day",
                "Hours of skin-to-skin contact (Kangaroo Mother Care) in the day",
            ),
            "subject": self.subject(device),
            "effectivePeriod": {"start": _local(start), "end": _local(end)},
            "valueQuantity": _hours(float(row["kmc_hours"])),
            "device": self.device(device),
            "component": [
                {
                    "code": _concept(KMC_CODES, "monitored-hours", "Hours with data in the day"),
                    "valueQuantity": _hours(float(row["monitored_hours"])),
                },
                {
                    "code": _concept(KMC_CODES, "sessions", "KMC sessions in the day"),
                    "valueInteger": int(row["sessions"]),
                },
                {
                    "code": _concept(
                        KMC_CODES, "effective-sessions", "Effective KMC sessions in the day"
                    ),
                    "valueInteger": int(row["effective_sessions"]),
                },
                {
                    "code": _concept(
                        KMC_CODES,
                        "observed-day",
                        "Day with enough data for the coverage indicators",
                    ),
                    "valueBoolean": bool(row["observed"]),
                },
            ],
        }
        return obs

    def session(self, row: dict[str, Any]) -> dict[str, Any]:
        device = str(row["device"])
        start, end = float(row["start"]), float(row["end"])
        obs = self._base(fhir_id(f"kmc-{fhir_id(device)}-session-{int(start)}"), [R4_OBSERVATION])
        effective_min = self.rep.settings.detector.effective_session_s / 60
        obs |= {
            "status": "final",
            "category": _kmc_categories(),
            "code": _concept(
                KMC_CODES,
                "kmc-session",
                "KMC session",
                "Skin-to-skin (Kangaroo Mother Care) session",
            ),
            "subject": self.subject(device),
            "effectivePeriod": {"start": iso_utc(start), "end": iso_utc(end)},
            "valueQuantity": {
                "value": round(float(row["duration_min"]), 1),
                "unit": "min",
                "system": UCUM,
                "code": "min",
            },
            "device": self.device(device),
            "component": [
                {
                    "code": _concept(
                        KMC_CODES,
                        "effective-session",
                        f"Effective session (at least {effective_min:g} min)",
                    ),
                    "valueBoolean": bool(row["effective"]),
                }
            ],
        }
        return obs

    def alert(self, row: dict[str, Any]) -> dict[str, Any]:
        device, kind = str(row["device"]), str(row["kind"])
        start, end = float(row["start"]), float(row["end"])
        cfg = self.rep.settings.detector
        obs = self._base(
            fhir_id(f"kmc-{fhir_id(device)}-{kind.replace('_', '-')}-{int(start)}"),
            [R4_OBSERVATION],
        )
        period = {"start": iso_utc(start)} | ({"end": iso_utc(end)} if np.isfinite(end) else {})
        code, display = BAND_INTERPRETATION[kind]
        off = cfg.axillary_offset_c
        judged = f"reading + {off:g} C axillary offset" if off else "reading"
        obs |= {
            "status": "final",
            "category": [_concept(KMC_CATEGORY, "thermal-alert", "Thermal alert episode")],
            "code": _concept(
                KMC_CODES,
                f"thermal-alert-{kind.replace('_', '-')}",
                f"{BAND_DISPLAY[kind]} alert episode",
                f"{BAND_DISPLAY[kind]} episode (WHO band, KMC Sense detector)",
            ),
            "subject": self.subject(device),
            "effectivePeriod": period,
            "valueQuantity": _celsius(float(row["extreme_c"])),
            "interpretation": [_concept(INTERPRETATION, code, display)],
            "note": [
                {
                    "text": f"value: the extreme temperature of the episode as the detector "
                    f"judged it ({judged})"
                }
            ],
            "device": self.device(device),
        }
        components = []
        threshold = cfg.threshold_c(kind)
        if threshold is not None:
            components.append(
                {
                    "code": _concept(KMC_CODES, "band-threshold", "The band's threshold"),
                    "valueQuantity": _celsius(threshold),
                }
            )
        if np.isfinite(float(row["alert_time"])):
            components.append(
                {
                    "code": _concept(KMC_CODES, "alert-time", "When the alert was raised"),
                    "valueDateTime": iso_utc(float(row["alert_time"])),
                }
            )
        if components:
            obs["component"] = components
        return obs


def fhir_bundle(
    readings: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    rep: Report,
    every_s: float,
) -> dict[str, Any]:
    """The transaction Bundle of `rep`'s straps: Devices, Patients, and the Observations of
    temperatures (`readings`, from `IntervalReadings`), days, sessions and thermal alerts."""
    b = _Builder(rep, every_s)
    tz = zone(rep.tz)
    devices = sorted(set(readings) | {s.device for s in rep.straps})
    entries = [_put(gateway_device(rep.site, rep.ward))]
    entries += [_put(strap_device(d)) for d in devices]
    pseudonyms = sorted({b.subjects.get(d) or f"strap-{d}" for d in devices})
    entries += [patient_entry(p) for p in pseudonyms]
    for device in devices:
        if device not in readings:
            continue
        times, temps, why = readings[device]
        for t, c, w in zip(times.tolist(), temps.tolist(), why.tolist(), strict=True):
            entries.append(_put(b.temperature(device, t, c, w)))
    entries += [_put(b.day(row, tz)) for row in rep.tables["daily"].rows()]
    entries += [_put(b.session(row)) for row in rep.tables["sessions"].rows()]
    thermal = [k for k in rep.thermal_kinds() if k in THERMAL]
    entries += [
        _put(b.alert(row)) for row in rep.tables["alerts"].rows() if str(row["kind"]) in thermal
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def summary(doc: dict[str, Any]) -> str:
    """What a Bundle holds, in words: resources by profile, Observations by code."""
    said: dict[str, int] = {}
    absent = 0
    for e in doc["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Observation":
            name = r["code"]["coding"][0]["code"]
            name = {MDC_TEMP_BODY: "temperatures"}.get(name, name)
            absent += "dataAbsentReason" in r
        else:
            name = r["meta"]["profile"][0].rsplit("/", 1)[-1]
        said[name] = said.get(name, 0) + 1
    text = ", ".join(f"{n} {k}" for k, n in said.items())
    return text + (f" ({absent} temperatures without a value)" if absent else "")


class TappedSource:
    """A `SampleSource` whose chunks also feed `readings` on their way to the detector: one
    pass over the samples for both. A samples file found out of order is read again, sorted:
    the intervals then start again with it."""

    def __init__(self, src: SampleSource, every_s: float) -> None:
        self.src = src
        self.every_s = every_s
        self.label = src.label
        self.period = src.period
        self.infants = src.infants
        self.readings = IntervalReadings(every_s)

    def consume(self, use: Callable[[Iterator[tuple[str, Samples]]], T]) -> T:
        def run(chunks: Iterator[tuple[str, Samples]]) -> T:
            self.readings = IntervalReadings(self.every_s)
            return use(self.readings.tap(chunks))

        return self.src.consume(run)

    def notes(self) -> list[str]:
        return self.src.notes()
