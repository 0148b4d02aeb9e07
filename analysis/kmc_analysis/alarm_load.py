"""Alarm load: how many alarms a ward's screen raised per baby-day, by priority.

Alarm fatigue is how monitoring fails on a ward: a unit judges a monitor by how often it calls a
nurse, and for what. The figure is the number of alert episodes of each priority
(`clinical.ALARMS`, docs/alarms.md) over the baby-days of data (monitored hours / 24), each
episode one alarm as the ward screen shows it: a baby in moderate hypothermia has crossed cold
stress too, and the screen raises both (nested bands each their own). The gateway's
`signal_lost` and the chain's own alarms are not in offline data, so they are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from kmc_host.clinical import PRIORITIES, alarm_of

from .tables import HOUR_S, Strap

__all__ = ["AlarmLoad", "alarm_load"]


@dataclass(frozen=True)
class AlarmLoad:
    """Alarms by priority, and the baby-days of data they were raised over."""

    alarms: dict[str, int]  # priority -> alert episodes
    baby_days: float

    def per_baby_day(self) -> dict[str, float]:
        """Alarms of each priority per baby-day of data (NaN without data)."""
        days = self.baby_days
        return {p: (n / days if days > 0 else float("nan")) for p, n in self.alarms.items()}

    def line(self) -> str:
        rates = self.per_baby_day()
        said = ", ".join(f"{p} {rates[p]:.2f}" for p in PRIORITIES)
        total = sum(self.alarms.values())
        return (
            f"alarms per baby-day: {said} ({total} alarms over {self.baby_days:.1f} baby-days"
            " of data)"
        )


def alarm_load(strap_list: list[Strap]) -> AlarmLoad:
    """Count each strap's alert episodes by their kind's priority, over its monitored hours."""
    alarms = dict.fromkeys(PRIORITIES, 0)
    seconds = 0.0
    for s in strap_list:
        r = s.result
        for kind, episodes in r.episodes.items():
            alarms[alarm_of(kind).priority] += len(episodes)
        seconds += float((r.monitored_end - r.monitored_start).sum())
    return AlarmLoad(alarms, seconds / HOUR_S / 24.0)
