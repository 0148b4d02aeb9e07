"""DHIS2 metadata for the KMC counts a country's HMIS does not have yet (`kmc export dhis2-metadata`).

The WHO RMNCAH aggregate package (dhis2/metadata-package-development, metadata/RMNCAH/
RMNCAH_COMPLETE_V1_DHIS2.3x/metadata.json, package RMNCAH_AGGREGATE_V1.1.0) has one KMC data
element: "RMNCAH - Newborns on kangaroo mother care (KMC)", code RMNCAH_NN_KMC, uid Do6GGAEz16D,
INTEGER_ZERO_OR_POSITIVE, SUM, the default category combo, in the "RMNCAH" Monthly data set
(tQc4Gv2Jwco), described as "Newborns initiated on KMC (or admitted to KMC unit if separate unit
exists)"; its indicator y8YZCvBmBK3 divides it by live births in facility. `kmc export dhis2`
fills that data element as it is (see `exports.newborns_started_kmc`).

What the package lacks, hours of KMC per day and how many infants and days reach 8, 18 and 20 h,
monitored days, thermal alerts per baby-day, is defined here: one data element per monthly count
of `exports.COUNTS`, a Monthly data set holding them, two indicator types and the indicators
(numerator and denominator are data elements of this file). An administrator imports the file
as it is (Import/Export app, or POST /api/metadata).

Every uid is derived from the object's code (`stable_uid`), so the file is the same on every run
and on every machine: importing it again updates the objects instead of making copies, and the
default mapping of `kmc export dhis2` can name the data elements before anyone has imported
anything. Category combos are left out on purpose: DHIS2 then gives each object its own
default combo (as dhis2-core's metadata import test `metadata_no_defaults.json` shows), so the
data values need no category option combo uid, which only the importing instance would know.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .coverage import BANDS_H

# The RMNCAH package's KMC data element, as read from the package (see the module docstring).
RMNCAH_NN_KMC = "Do6GGAEz16D"
RMNCAH_NN_KMC_CODE = "RMNCAH_NN_KMC"
RMNCAH_MONTHLY_DATA_SET = "tQc4Gv2Jwco"

PREFIX = "KMC_SENSE_"  # every code here starts so: it names the source and keeps codes unique
_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_REST = _FIRST + "0123456789"


def stable_uid(code: str) -> str:
    """A DHIS2 uid (11 characters, a letter first, then letters and digits) from `code`: the
    SHA-256 of `kmc-sense:<code>` read as a number, written in DHIS2's alphabet. Distinct codes
    give distinct uids but for a 1 in 52 x 62^10 chance (the tests check this file's)."""
    n = int.from_bytes(hashlib.sha256(f"kmc-sense:{code}".encode()).digest(), "big")
    n, first = divmod(n, len(_FIRST))
    chars = [_FIRST[first]]
    for _ in range(10):
        n, k = divmod(n, len(_REST))
        chars.append(_REST[k])
    return "".join(chars)


@dataclass(frozen=True)
class Element:
    count: str  # the key in exports.COUNTS
    code: str
    name: str
    short: str  # DHIS2 shortName: at most 50 characters, unique among data elements
    description: str
    value_type: str = "INTEGER_ZERO_OR_POSITIVE"

    @property
    def uid(self) -> str:
        return stable_uid(self.code)


def _bands() -> list[Element]:
    out = []
    for b in BANDS_H:
        h = f"{b:g}"
        out.append(
            Element(
                f"infants_reaching_{h}h",
                f"{PREFIX}INFANTS_REACHING_{h}H",
                f"KMC - Eligible infants with mean KMC >= {h} h/day",
                f"KMC infants mean >= {h} h/day",
                f"Eligible infants (birth weight < 2000 g) whose mean KMC hours over their "
                f"observed days of the month reach {h} h (KMC Sense strap).",
            )
        )
        out.append(
            Element(
                f"infant_days_ge_{h}h",
                f"{PREFIX}INFANT_DAYS_GE_{h}H",
                f"KMC - Observed infant-days with KMC >= {h} h",
                f"KMC infant-days >= {h} h",
                f"Observed infant-days of eligible infants with at least {h} h of KMC.",
            )
        )
    return out


ELEMENTS: tuple[Element, ...] = (
    Element(
        "eligible_infants",
        f"{PREFIX}ELIGIBLE_INFANTS",
        "KMC - Eligible infants monitored",
        "KMC eligible infants monitored",
        "Eligible infants (birth weight < 2000 g, or every strap without a roster) with at least "
        "one observed day in the month (KMC Sense strap).",
    ),
    Element(
        "infant_days",
        f"{PREFIX}INFANT_DAYS",
        "KMC - Observed infant-days",
        "KMC observed infant-days",
        "Local calendar days of eligible infants with enough strap data to count (20 h by "
        "default): the denominator of the hours-per-day indicators.",
    ),
    *_bands(),
    Element(
        "kmc_hours",
        f"{PREFIX}KMC_HOURS",
        "KMC - Hours of skin-to-skin contact on observed days",
        "KMC hours on observed days",
        "Hours of KMC of eligible infants on their observed days, summed.",
        "NUMBER",
    ),
    Element(
        "baby_days",
        f"{PREFIX}BABY_DAYS",
        "KMC - Monitored baby-days",
        "KMC monitored baby-days",
        "Time eligible infants were monitored by a strap, in days (hours / 24): the "
        "denominator of alerts per baby-day.",
        "NUMBER",
    ),
    Element(
        "thermal_alerts",
        f"{PREFIX}THERMAL_ALERTS",
        "KMC - Thermal alert episodes",
        "KMC thermal alert episodes",
        "Thermal alert episodes of eligible infants (each WHO band counted: cold stress, "
        "moderate hypothermia, severe hypothermia, hyperthermia).",
    ),
)
BY_COUNT = {e.count: e for e in ELEMENTS}


@dataclass(frozen=True)
class IndicatorType:
    code: str
    name: str
    factor: int
    number: bool

    @property
    def uid(self) -> str:
        return stable_uid(self.code)


PERCENT = IndicatorType(f"{PREFIX}PERCENT", "KMC Sense percentage", 100, False)
RATIO = IndicatorType(f"{PREFIX}RATIO", "KMC Sense ratio (factor 1)", 1, True)


@dataclass(frozen=True)
class Indicator:
    code: str
    name: str
    short: str
    description: str
    numerator: str  # a count of exports.COUNTS
    denominator: str
    kind: IndicatorType
    decimals: int = 1

    @property
    def uid(self) -> str:
        return stable_uid(self.code)


def _indicators() -> list[Indicator]:
    out = [
        Indicator(
            f"{PREFIX}MEAN_KMC_HOURS",
            "KMC - Mean KMC hours per observed infant-day",
            "KMC mean hours/day",
            "Hours of KMC per observed day of an eligible infant, on average.",
            "kmc_hours",
            "infant_days",
            RATIO,
        )
    ]
    for b in BANDS_H:
        h = f"{b:g}"
        out.append(
            Indicator(
                f"{PREFIX}INFANTS_REACHING_{h}H_PCT",
                f"KMC - Eligible infants with mean KMC >= {h} h/day (%)",
                f"KMC infants >= {h} h/day (%)",
                f"Share of monitored eligible infants whose mean KMC reaches {h} h a day.",
                f"infants_reaching_{h}h",
                "eligible_infants",
                PERCENT,
            )
        )
        out.append(
            Indicator(
                f"{PREFIX}INFANT_DAYS_GE_{h}H_PCT",
                f"KMC - Observed infant-days with KMC >= {h} h (%)",
                f"KMC infant-days >= {h} h (%)",
                f"Share of observed infant-days with at least {h} h of KMC.",
                f"infant_days_ge_{h}h",
                "infant_days",
                PERCENT,
            )
        )
    out.append(
        Indicator(
            f"{PREFIX}THERMAL_ALERTS_PER_BABY_DAY",
            "KMC - Thermal alert episodes per monitored baby-day",
            "KMC thermal alerts/baby-day",
            "Thermal alert episodes per day of strap monitoring of eligible infants.",
            "thermal_alerts",
            "baby_days",
            RATIO,
            2,
        )
    )
    return out


INDICATORS: tuple[Indicator, ...] = tuple(_indicators())
DATA_SET_CODE = f"{PREFIX}MONTHLY"


def default_data_elements() -> dict[str, tuple[str, str | None]]:
    """The mapping `kmc export dhis2` uses when the mapping file names no data elements: the
    RMNCAH package's for newborns started on KMC, this file's for every other count."""
    out: dict[str, tuple[str, str | None]] = {"newborns_started_kmc": (RMNCAH_NN_KMC, None)}
    return out | {e.count: (e.uid, None) for e in ELEMENTS}


def metadata() -> dict[str, Any]:
    """The metadata import document: data elements, indicator types, indicators, the data set."""
    data_set = stable_uid(DATA_SET_CODE)
    elements = [
        {
            "id": e.uid,
            "code": e.code,
            "name": e.name,
            "shortName": e.short,
            "formName": e.name.removeprefix("KMC - "),
            "description": e.description,
            "valueType": e.value_type,
            "aggregationType": "SUM",
            "domainType": "AGGREGATE",
            "zeroIsSignificant": True,  # 0 infants reaching 18 h is a finding, not a blank
        }
        for e in ELEMENTS
    ]
    types = [
        {"id": t.uid, "name": t.name, "factor": t.factor, "number": t.number}
        for t in (PERCENT, RATIO)
    ]
    indicators = [
        {
            "id": i.uid,
            "code": i.code,
            "name": i.name,
            "shortName": i.short,
            "description": i.description,
            "indicatorType": {"id": i.kind.uid},
            "annualized": False,
            "decimals": i.decimals,
            "numerator": f"#{{{BY_COUNT[i.numerator].uid}}}",
            "numeratorDescription": BY_COUNT[i.numerator].name.removeprefix("KMC - "),
            "denominator": f"#{{{BY_COUNT[i.denominator].uid}}}",
            "denominatorDescription": BY_COUNT[i.denominator].name.removeprefix("KMC - "),
        }
        for i in INDICATORS
    ]
    data_sets = [
        {
            "id": data_set,
            "code": DATA_SET_CODE,
            "name": "KMC Sense - monthly KMC monitoring",
            "shortName": "KMC Sense monthly",
            "periodType": "Monthly",
            "dataSetElements": [
                {"dataElement": {"id": e.uid}, "dataSet": {"id": data_set}} for e in ELEMENTS
            ],
        }
    ]
    return {
        "dataElements": elements,
        "indicatorTypes": types,
        "indicators": indicators,
        "dataSets": data_sets,
    }
