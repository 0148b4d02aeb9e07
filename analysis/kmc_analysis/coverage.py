"""Coverage indicators: do eligible babies get enough KMC each day?

Eligible: birth weight < 2000 g (DESIGN.md). The indicator bands are 8 h (WHO 2023), 18 h
(facility KMC target) and 20 h (iKMC trial). Only *observed* days count: local days with at least
`min_monitored_hours` of data, so admission and discharge days and days with strap outages
neither inflate nor deflate a baby's figure. Per infant: mean KMC hours over observed days, and
the days meeting each band. Per cohort: the share of eligible infants whose mean reaches each
band, and the share of eligible infant-days meeting it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ELIGIBLE_BELOW_G = 2000.0
BANDS_H = (8.0, 18.0, 20.0)
DEFAULT_MIN_MONITORED_H = 20.0


@dataclass
class InfantCoverage:
    infant_id: str
    device: str
    birth_weight_g: float
    eligible: bool
    observed_days: int
    mean_kmc_hours: float
    days_meeting: dict[float, int] = field(default_factory=dict)

    def reaches(self, band: float) -> bool:
        return self.observed_days > 0 and self.mean_kmc_hours >= band


def infant_coverage(
    infant_id: str,
    device: str,
    birth_weight_g: float,
    kmc_hours: np.ndarray,
    monitored_hours: np.ndarray,
    min_monitored_hours: float = DEFAULT_MIN_MONITORED_H,
) -> InfantCoverage:
    """One infant's indicators from its daily hours."""
    observed = monitored_hours >= min_monitored_hours
    kmc = kmc_hours[observed]
    return InfantCoverage(
        infant_id,
        device,
        birth_weight_g,
        birth_weight_g < ELIGIBLE_BELOW_G,
        int(kmc.size),
        float(kmc.mean()) if kmc.size else float("nan"),
        {b: int((kmc >= b).sum()) for b in BANDS_H},
    )


@dataclass
class CohortCoverage:
    eligible_infants: int  # eligible infants with at least one observed day
    infant_days: int
    share_infants_reaching: dict[float, float]
    share_days_meeting: dict[float, float]
    mean_kmc_hours: float  # the mean of the infants' means (unrounded)
    infants_reaching: dict[float, int]
    days_meeting: dict[float, int]


def cohort_coverage(infants: list[InfantCoverage]) -> CohortCoverage:
    """The cohort indicators over eligible infants with at least one observed day (the one
    computation behind `kmc analyze`'s coverage.csv and `kmc report`'s cohort table)."""
    counted = [i for i in infants if i.eligible and i.observed_days > 0]
    days = sum(i.observed_days for i in counted)
    reaching = {b: sum(i.reaches(b) for i in counted) for b in BANDS_H}
    meeting = {b: sum(i.days_meeting[b] for i in counted) for b in BANDS_H}
    nan = float("nan")
    return CohortCoverage(
        len(counted),
        days,
        {b: reaching[b] / len(counted) if counted else nan for b in BANDS_H},
        {b: meeting[b] / days if days else nan for b in BANDS_H},
        float(np.mean([i.mean_kmc_hours for i in counted])) if counted else nan,
        reaching,
        meeting,
    )


def coverage_rows(infants: list[InfantCoverage]) -> tuple[list[str], list[list[object]]]:
    """coverage.csv: one row per infant, then one `cohort` row."""
    tags = [f"{b:g}h" for b in BANDS_H]
    header = (
        [
            "scope",
            "infant_id",
            "device",
            "birth_weight_g",
            "eligible",
            "observed_days",
            "mean_kmc_hours",
        ]
        + [f"days_ge_{t}" for t in tags]
        + [f"reaches_{t}" for t in tags]
        + ["eligible_infants"]
        + [f"share_infants_reaching_{t}" for t in tags]
        + [f"share_days_ge_{t}" for t in tags]
    )
    rows: list[list[object]] = []
    blank = [""] * (1 + 2 * len(BANDS_H))
    for i in infants:
        rows.append(
            [
                "infant",
                i.infant_id,
                i.device,
                f"{i.birth_weight_g:g}",
                int(i.eligible),
                i.observed_days,
                _num(i.mean_kmc_hours),
            ]
            + [i.days_meeting[b] for b in BANDS_H]
            + [int(i.reaches(b)) for b in BANDS_H]
            + blank
        )
    c = cohort_coverage(infants)
    rows.append(
        ["cohort", "", "", "", "", c.infant_days, _num(c.mean_kmc_hours)]
        + [c.days_meeting[b] for b in BANDS_H]
        + [c.infants_reaching[b] for b in BANDS_H]
        + [c.eligible_infants]
        + [_num(c.share_infants_reaching[b]) for b in BANDS_H]
        + [_num(c.share_days_meeting[b]) for b in BANDS_H]
    )
    return header, rows


def _num(x: float) -> str:
    return "" if np.isnan(x) else f"{x:.3f}"
