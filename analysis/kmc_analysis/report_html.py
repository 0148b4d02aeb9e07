"""The report as one self-contained HTML file: tables and matplotlib plots (PNG, inline base64).

Self-contained so it can be e-mailed, archived with a study or opened on a ward PC with no
network. Plots: the ward's coverage over time, and per infant the daily KMC hours against the
8/18/20 h targets and the last 24 h of temperature with KMC sessions shaded, the report's thermal
bands drawn (`band_lines`) and alerts marked. The method paragraph names the detector settings:
their digest, where they came from and every value that differs from the defaults.
Colour is never the only cue: lines are labelled and alert spans carry their kind as text.
matplotlib (Agg backend, no display) was chosen as the well-kept plotting library for PNGs.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from kmc_host.clinical import (  # noqa: E402
    BATTERY_LOW,
    COLD_STRESS,
    HYPERTHERMIA,
    MODERATE_HYPOTHERMIA,
    SEVERE_HYPOTHERMIA,
    STRAP_OFF,
)
from kmc_host.detect import DetectorConfig, zone  # noqa: E402

from .coverage import BANDS_H  # noqa: E402
from .report import Report  # noqa: E402
from .tables import Strap, Table  # noqa: E402

BAND_COLOURS = {8.0: "#888888", 18.0: "#1b7837", 20.0: "#2166ac"}
ALERT_COLOURS = {
    COLD_STRESS: "#fdae61",
    MODERATE_HYPOTHERMIA: "#f46d43",
    SEVERE_HYPOTHERMIA: "#a50026",
    HYPERTHERMIA: "#d6604d",
    STRAP_OFF: "#bbbbbb",
    BATTERY_LOW: "#dddddd",
}


def _c(x: float) -> str:
    """Degrees C as a label shows them: one or two decimals (36.5, 36.0, 36.45)."""
    text = f"{x:.2f}"
    return text[:-1] if text.endswith("0") else text


def band_lines(cfg: DetectorConfig) -> list[tuple[float, str]]:
    """Where each thermal band of `cfg` lies on the temperature plot, and its label.

    The plot shows the strap's reading, infant_c (chest skin). The detector judges infant_c +
    axillary_offset_c against each band's threshold, so a band is crossed where the plotted
    reading crosses threshold - axillary_offset_c: that is the height of the band's line. The
    label gives that height and the band; with an offset, also the threshold as configured and
    the offset ("36.0 cold stress (36.5 - 0.5 offset)"). Bands in the settings' order."""
    off = cfg.axillary_offset_c
    lines = []
    for band in cfg.thermal_bands:
        level = band.threshold - off
        text = f"{_c(level)} " + band.kind.replace("_hypothermia", "").replace("_", " ")
        if off:
            text += f" ({_c(band.threshold)} {'-' if off > 0 else '+'} {_c(abs(off))} offset)"
        lines.append((level, text))
    return lines


def _x(t: Any) -> Any:
    """Unix seconds -> matplotlib date numbers (UTC; the axis formatter shows local time)."""
    return mdates.date2num(np.round(np.asarray(t, float)).astype("datetime64[s]"))


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(data: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def coverage_plot(table: Table) -> str | None:
    c = table.columns
    if len(table) == 0:
        return None
    dates = mdates.date2num(np.asarray(c["date"]).astype(str).astype("datetime64[D]"))
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for b, marker in zip(BANDS_H, "os^", strict=True):
        share = 100 * np.asarray(c[f"share_ge_{b:g}h"], float)
        ax.plot(dates, share, marker=marker, color=BAND_COLOURS[b], label=f">= {b:g} h/day")
    ax.set_ylim(-5, 105)
    ax.set_ylabel("eligible infants (%)")
    ax.set_title("Ward coverage: share of eligible infants meeting each daily KMC target")
    ax.legend(loc="upper left", ncol=3, fontsize=9)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    fig.autofmt_xdate()
    return _png(fig)


def daily_plot(s: Strap) -> str | None:
    d = s.daily
    if not d.dates:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.0))
    x = np.arange(len(d.dates))
    ax.bar(x, d.monitored_hours, color="#e0e0e0", label="monitored hours", width=0.8)
    ax.bar(x, d.kmc_hours, color="#5aae61", label="KMC hours", width=0.5)
    for b in BANDS_H:
        ax.axhline(b, color=BAND_COLOURS[b], ls="--", lw=1)
        ax.text(len(x) - 0.45, b, f"{b:g} h", va="center", fontsize=8, color=BAND_COLOURS[b])
    ax.set_xticks(x, [f"{day:%d %b}" for day in d.dates], rotation=45, fontsize=8)
    ax.set_ylim(0, 24.5)
    ax.set_ylabel("hours")
    ax.set_title(f"{s.infant_id or s.device}: KMC hours per day (strap {s.device})")
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    return _png(fig)


def trace_plot(s: Strap, tz: str, cfg: DetectorConfig) -> str | None:
    """The last 24 h of `s`'s temperature as a PNG (base64), or None without two samples."""
    fig = trace_figure(s, tz, cfg)
    return None if fig is None else _png(fig)


def trace_figure(s: Strap, tz: str, cfg: DetectorConfig) -> Figure | None:
    """The strap's reading (1-minute medians) over its last 24 h, KMC sessions shaded, alert
    episodes as labelled bars, and a dotted line per thermal band of `cfg` where the reading
    crosses it (`band_lines`), for the bands within the plotted range (35-38 C, wider when the
    reading goes beyond): a band the axis does not reach, the reading did not reach either."""
    tr = s.trace
    if tr is None or len(tr) < 2:
        return None
    zi = zone(tz)
    # 1-minute medians: 1,440 points a day draw fast and read the same
    minute = np.floor(tr.time / 60.0)
    edges = np.flatnonzero(np.diff(minute)) + 1
    starts = np.concatenate(([0], edges))
    t_min = tr.time[starts]
    with np.errstate(all="ignore"):
        infant = np.array(
            [
                np.nanmedian(p) if np.isfinite(p).any() else np.nan
                for p in np.split(tr.infant_c, edges)
            ]
        )
    gaps = np.flatnonzero(np.diff(t_min) > 180)  # break the line across data gaps
    infant[gaps] = np.nan
    when = _x(t_min)
    t0, t1 = float(tr.time[0]), float(tr.time[-1])

    fig, ax = plt.subplots(figsize=(9, 3.4))
    r = s.result
    shaded = (r.session_end > t0) & (r.session_start < t1)
    for k, (a, b) in enumerate(zip(r.session_start[shaded], r.session_end[shaded], strict=True)):
        ax.axvspan(
            _x(max(a, t0)),
            _x(min(b, t1)),
            color="#d9f0d3",
            label="KMC session" if k == 0 else None,
        )
    ax.plot(when, infant, color="#222222", lw=1.2, label="infant skin temperature")
    finite = infant[np.isfinite(infant)]
    lo = min(35.0, float(finite.min()) - 0.3) if finite.size else 35.0
    hi = max(38.0, float(finite.max()) + 0.3) if finite.size else 38.0
    ax.set_ylim(lo, hi)
    for (level, text), band in zip(band_lines(cfg), cfg.thermal_bands, strict=True):
        if lo <= level <= hi:
            colour = "#ef8a62" if band.direction == "above" else "#b2182b"
            ax.axhline(level, color=colour, ls=":", lw=1)
            ax.text(when[0], level + 0.03, text, fontsize=7, color="#67001f")
    row = 0
    for kind in (*(b.kind for b in cfg.thermal_bands), STRAP_OFF):
        ep = r.episodes.get(kind)
        if ep is None or len(ep) == 0:
            continue
        on = (ep.end > t0) & (ep.start < t1)
        for a, b in zip(ep.start[on], ep.end[on], strict=True):
            y = hi - 0.12 * (row + 1) * (hi - lo) / 2
            ax.plot(
                [
                    _x(max(a, t0)),
                    _x(min(b, t1)),
                ],
                [y, y],
                color=ALERT_COLOURS.get(kind, "#999999"),
                lw=5,
                solid_capstyle="butt",
            )
            ax.text(
                _x(max(a, t0)),
                y + 0.04,
                kind.replace("_", " "),
                fontsize=7,
            )
        row += 1
    ax.set_ylabel("C")
    ax.set_title(f"{s.infant_id or s.device}: last 24 h of temperature ({tz})")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b %H:%M", tz=zi))
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


# -- HTML


def _cell(v: Any, zi: dt.tzinfo | None = None) -> str:
    """One table cell; a time (Unix seconds) in the ward's zone `zi`, as the charts show it."""
    if isinstance(v, float | np.floating) and math.isnan(v):
        return ""
    if zi is not None:
        return dt.datetime.fromtimestamp(float(v), zi).strftime("%Y-%m-%d %H:%M")
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, float | np.floating):
        return f"{float(v):.2f}".rstrip("0").rstrip(".")
    return html.escape(str(v))


def _table(t: Table, zi: dt.tzinfo, columns: list[str] | None = None, where: Any = None) -> str:
    """An HTML table; its time columns in the ward's local time, said in their headers."""
    cols = columns or list(t.columns)
    head = "".join(
        f"<th>{html.escape(c.replace('_', ' '))}{' (local)' if c in t.times else ''}</th>"
        for c in cols
    )
    body = []
    for k in range(len(t)):
        if where is not None and not where(k):
            continue
        cells = "".join(
            f"<td>{_cell(t.columns[c][k], zi if c in t.times else None)}</td>" for c in cols
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        return "<p class=none>none</p>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#111}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:2px solid #ccc}h3{margin-bottom:.3em}
table{border-collapse:collapse;font-size:.9em;margin:.4em 0}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}.none{color:#666}.meta{color:#444}
.kpi{display:inline-block;border:1px solid #ccc;border-radius:6px;padding:.5em 1em;margin:.3em}
.kpi b{display:block;font-size:1.6em}img{max-width:100%}
"""


def render_html(rep: Report) -> str:
    """The report page. One time zone throughout, the ward's (`rep.tz`): tables, charts, the
    period and the generation time are local, and the page names the zone and its offset."""
    zi = zone(rep.tz)
    now = dt.datetime.now(zi)
    generated = now.strftime("%Y-%m-%d %H:%M")
    offset = now.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    if rep.period is not None and all(math.isfinite(x) for x in rep.period):
        a = dt.datetime.fromtimestamp(rep.period[0], zi).date()
        b = dt.datetime.fromtimestamp(rep.period[1], zi).date() - dt.timedelta(days=1)
        period = f"{a} to {b} ({rep.tz})"
    else:
        period = f"all data ({rep.tz})"
    cohort = rep.tables["cohort"].columns
    kpis = [
        ("eligible infants", cohort["eligible_infants"][0]),
        ("observed infant-days", cohort["infant_days"][0]),
        ("mean KMC h/day", cohort["mean_kmc_hours"][0]),
        *(
            (f"infants reaching {b:g} h", _pct(cohort[f"share_infants_reaching_{b:g}h"][0]))
            for b in BANDS_H
        ),
        ("median h to first KMC", cohort["median_hours_to_first_kmc"][0]),
        ("thermal alerts / baby-day", cohort["thermal_alerts_per_baby_day"][0]),
    ]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{html.escape(rep.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(rep.title)}</h1>",
        f"<p class=meta>All times are local time in {html.escape(rep.tz)} "
        f"({html.escape(offset)} today); dates are its calendar days.</p>",
        f"<p class=meta>Period: {html.escape(period)}. Source: {html.escape(rep.source)}. "
        f"Generated {generated}. A day counts as observed with at least "
        f"{rep.min_monitored_hours:g} h of data; eligible: birth weight below 2000 g.</p>",
        "".join(f"<div class=kpi>{html.escape(k)}<b>{_cell(v)}</b></div>" for k, v in kpis),
    ]
    for note in rep.notes:
        parts.append(f"<p class=meta>Note: {html.escape(note)}</p>")
    parts.append("<h2>Ward coverage over time</h2>")
    cov = coverage_plot(rep.tables["ward_coverage"])
    parts.append(
        _img(cov, "ward coverage per day") if cov else "<p class=none>no observed days</p>"
    )
    parts.append(_table(rep.tables["ward_coverage"], zi))
    parts.append("<h2>Cohort indicators</h2>")
    parts.append(_table(rep.tables["cohort"], zi))
    parts.append("<h2>Infants</h2>")
    parts.append(
        _table(
            rep.tables["infants"],
            zi,
            [
                "infant_id",
                "device",
                "birth_weight_g",
                "observed_days",
                "mean_kmc_hours",
                "mean_monitored_hours",
                "sessions",
                "effective_sessions",
                *(f"days_ge_{b:g}h" for b in BANDS_H),
                "hours_to_first_kmc",
                "thermal_alerts",
                "thermal_alerts_per_baby_day",
            ],
        )
    )
    sessions, alerts = rep.tables["sessions"], rep.tables["alerts"]
    for s in rep.straps:
        parts.append(
            f"<h2>{html.escape(s.infant_id or '(no infant id)')} — strap "
            f"{html.escape(s.device)}</h2>"
        )
        for png, alt in (
            (daily_plot(s), "KMC hours per day"),
            (trace_plot(s, rep.tz, rep.config), "temperature, last 24 h"),
        ):
            if png:
                parts.append(_img(png, f"{s.infant_id or s.device}: {alt}"))
        dev = s.device
        parts.append("<h3>Alert episodes</h3>")
        parts.append(
            _table(
                alerts,
                zi,
                ["kind", "start", "end", "duration_min", "extreme_c"],
                lambda k, dev=dev: alerts.columns["device"][k] == dev,
            )
        )
        parts.append("<h3>Sessions</h3>")
        parts.append(
            _table(
                sessions,
                zi,
                ["start", "end", "duration_min", "effective"],
                lambda k, dev=dev: sessions.columns["device"][k] == dev,
            )
        )
    parts.append(method_html(rep))
    parts.append("</body></html>")
    return "\n".join(parts)


def method_html(rep: Report) -> str:
    """The method paragraph: the rules with the values the detector used, and the settings
    named by digest and origin, with every value that differs from the defaults."""
    cfg, settings = rep.config, rep.settings
    off = cfg.axillary_offset_c
    bands = ", ".join(
        f"{b.kind.replace('_', ' ')} {b.direction} {_c(b.threshold)} C" for b in cfg.thermal_bands
    )
    first = cfg.thermal_bands[0] if cfg.thermal_bands else None
    persistence = (
        f" with {first.persist_s:g} s persistence and {first.hysteresis:g} C hysteresis"
        if first
        else ""
    )
    offset = f" {'+' if off > 0 else '-'} {abs(off):g} C axillary offset" if off else ""
    changed = settings.changed()
    changes = (
        "; changed from the defaults: "
        + ", ".join(f"{k} = {_plain(v)} (default {_plain(d)})" for k, (v, d) in changed.items())
        if changed
        else "; every value the default"
    )
    return (
        "<h2>Method</h2><p class=meta>Sessions: caregiver contact and strap worn, runs under "
        f"{cfg.min_contact_s:g} s ignored, interruptions up to {cfg.bridge_s / 60:g} min bridged, "
        f"sessions under {cfg.min_session_s / 60:g} min dropped, effective from "
        f"{cfg.effective_session_s / 60:g} min. Alerts on the chest-skin reading{offset}: "
        f"{html.escape(bands)}"
        f"{persistence}; none while the strap is off or settling. The temperature plots "
        "show the reading itself, each band's dotted line where the reading crosses it "
        f"{' (threshold - offset)' if off else ''}. Tables as CSV "
        "and Parquet beside this file, their times in UTC (ISO 8601 with Z in CSV, UTC "
        "timestamps in Parquet) so that files from wards in other zones combine; their "
        "dates are local calendar days.</p>"
        f"<p class=meta>Detector settings {settings.digest} ({html.escape(settings.origin())})"
        f"{html.escape(changes)}. Every value: settings.json beside this file.</p>"
    )


def _plain(v: object) -> str:
    return f"{v:g}" if isinstance(v, float | int) else str(v)


def _pct(x: float) -> str:
    return "" if math.isnan(x) else f"{100 * x:.0f}%"


def write_html(rep: Report, path: Path) -> Path:
    path.write_text(render_html(rep), encoding="utf-8")
    return path
