"""The researchers' commands, added to `kmc` (kmc_host.cli) through the entry point
`kmc_sense.commands` = `analysis`:

- `kmc analyze SAMPLES --out DIR`: sessions, hours per day, alerts and coverage (DESIGN.md)
- `kmc report SAMPLES|--influx TOML --out DIR`: per-infant and ward tables, HTML with plots
- `kmc export dhis2|dhis2-metadata|fhir ...`: DHIS2 data value sets and the metadata they
  fill, a FHIR R4 Bundle of temperatures
- `kmc validate SAMPLES OBSERVER_LOG`: agreement with a time-stamped observer log
- `kmc simulate --out FILE`: a simulated ward's samples and its ground truth

`make_report` is the report's whole job as a function (the demo calls it on its InfluxDB).

analyze, report, export and validate take `--config FILE`: the `[detector]` section of a TOML
file, a gateway's whole file as it is (settings.py), read before any sample; each names the
settings it ran with in its output and its summary.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kmc_host.errors import BadInput

if TYPE_CHECKING:  # the commands load what they use when they run, not when kmc starts
    from .settings import Settings
    from .sources import SampleSource

__all__ = ["add_commands", "make_report"]


def _settings(args: argparse.Namespace) -> Settings:
    """`--config FILE`'s detector settings, or the defaults; read first, so a bad file stops
    the command before any sample is read."""
    from .settings import load_settings

    return load_settings(args.config)


def _analyze(args: argparse.Namespace) -> int:
    from .analyze import analyze_file

    settings = _settings(args)
    summary = analyze_file(
        args.samples,
        args.out,
        tz=args.tz,
        roster_path=args.roster,
        skip_invalid=args.skip_invalid,
        settings=settings,
        min_monitored_hours=args.min_monitored_hours,
    )
    print("\n".join(summary.lines()))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .simulate import simulate_ward

    started = time.perf_counter()
    out, truth, rows = simulate_ward(
        args.out,
        args.devices,
        args.days,
        seed=args.seed,
        tz=args.tz,
        start=args.start,
        truth_dir=args.truth,
        noise_c=args.noise,
    )
    print(f"wrote {rows} samples of {args.devices} straps over {args.days:g} days to {out}")
    print(f"ground truth and roster in {truth}/ ({time.perf_counter() - started:.1f} s)")
    return 0


def _source(args: argparse.Namespace) -> SampleSource:
    from .report import period_from_dates
    from .sources import open_source

    return open_source(
        args.samples,
        args.influx,
        period_from_dates(args.date_from, args.date_to, args.tz),
        site=args.site or "",
        ward=args.ward or "",
        skip_invalid=args.skip_invalid,
    )


def _build_report(
    src: SampleSource,
    keep_trace: bool,
    *,
    tz: str,
    roster_path: str | None,
    site: str,
    ward: str,
    min_monitored_hours: float,
    settings: Settings,
) -> Any:
    from .detection import detect_period
    from .report import build_report
    from .roster import load_roster

    roster = load_roster(roster_path) if roster_path else None
    cfg = settings.detector
    detected = src.consume(lambda chunks: detect_period(chunks, cfg, keep_trace=keep_trace))
    for line in src.notes():
        print(line)
    return build_report(
        detected,
        tz=tz,
        roster=roster,
        infant_tags=src.infants,
        site=site,
        ward=ward,
        period=src.period,
        source=src.label,
        settings=settings,
        min_monitored_hours=min_monitored_hours,
    )


def _report_args(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    return {
        "settings": settings,
        "tz": args.tz,
        "roster_path": args.roster,
        "site": args.site or "",
        "ward": args.ward or "",
        "min_monitored_hours": args.min_monitored_hours,
    }


def make_report(
    src: SampleSource,
    out: Path,
    *,
    tz: str = "UTC",
    roster_path: str | None = None,
    site: str = "",
    ward: str = "",
    min_monitored_hours: float = 20.0,
    settings: Settings | None = None,
) -> None:
    """`kmc report`: the tables (CSV, Parquet), report.html and settings.json of `src` in
    `out`, made with `settings` (None: the defaults); prints a three-line summary."""
    from .report import write_tables
    from .report_html import write_html
    from .settings import Settings

    settings = settings or Settings()
    rep = _build_report(
        src,
        True,
        tz=tz,
        roster_path=roster_path,
        site=site,
        ward=ward,
        min_monitored_hours=min_monitored_hours,
        settings=settings,
    )
    files = write_tables(rep, out)
    html_path = write_html(rep, out / "report.html")
    settings_path = settings.write(out)
    cohort = rep.tables["cohort"].columns
    mean = float(cohort["mean_kmc_hours"][0])
    print(
        f"{len(rep.straps)} straps; {cohort['eligible_infants'][0]} eligible infants with "
        f"{cohort['infant_days'][0]} observed days; mean KMC "
        + ("n/a" if mean != mean else f"{mean:.1f} h/day")
    )
    print(settings.line())
    print(f"wrote {html_path}, {settings_path.name} and {len(files)} table files in {out}")


def _report(args: argparse.Namespace) -> int:
    settings = _settings(args)
    make_report(_source(args), Path(args.out), **_report_args(args, settings))
    return 0


# `kmc export` options that only some formats use, with their defaults: another format given
# one refuses it (no option may silently do nothing)
EXPORT_OPTIONS = {
    "samples": (None, ("dhis2", "fhir")),
    "influx": (None, ("dhis2", "fhir")),
    "mapping": (None, ("dhis2",)),
    "every_min": (15.0, ("fhir",)),
    "date_from": (None, ("dhis2", "fhir")),
    "date_to": (None, ("dhis2", "fhir")),
    "site": ("", ("dhis2", "fhir")),
    "ward": ("", ("dhis2", "fhir")),
    "tz": ("UTC", ("dhis2", "fhir")),
    "roster": (None, ("dhis2", "fhir")),
    "skip_invalid": (False, ("dhis2", "fhir")),
    "min_monitored_hours": (20.0, ("dhis2", "fhir")),
    "config": (None, ("dhis2", "fhir")),
}


def _refuse_unused(args: argparse.Namespace) -> None:
    unused = [
        name
        for name, (default, formats) in EXPORT_OPTIONS.items()
        if args.format not in formats and getattr(args, name) != default
    ]
    if unused:
        said = ", ".join(
            "SAMPLES" if n == "samples" else "--" + n.replace("_", "-") for n in unused
        )
        raise BadInput(f"{said}: not used by kmc export {args.format}")


def _export(args: argparse.Namespace) -> int:
    from .exports import (
        dhis2_data_value_set,
        fhir_bundle,
        load_dhis2_mapping,
        report_newborns_started_kmc,
        write_json,
    )

    out = Path(args.out)
    _refuse_unused(args)
    if args.format == "dhis2-metadata":  # the same file every time: it reads no samples
        from .dhis2_metadata import metadata

        doc = metadata()
        write_json(doc, out)
        print(
            f"wrote {len(doc['dataElements'])} data elements, {len(doc['indicators'])} indicators"
            f" and the data set {doc['dataSets'][0]['name']!r} to {out}"
        )
        return 0
    settings = _settings(args)
    if args.format == "dhis2":
        if not args.mapping:
            raise BadInput("dhis2 needs --mapping FILE (org unit ids; data element ids optional)")
        mapping = load_dhis2_mapping(args.mapping)
        rep = _build_report(_source(args), False, **_report_args(args, settings))
        doc = dhis2_data_value_set(rep, mapping)
        write_json(doc, out)
        months = sorted({v["period"] for v in doc["dataValues"]})
        _, already = report_newborns_started_kmc(rep)
        if already and "newborns_started_kmc" in mapping.data_elements:
            print(
                f"newborns_started_kmc leaves out {len(already)} infant(s) whose data begins at "
                f"--from (they may have started KMC before it): {', '.join(already)}"
            )
        print(settings.line())
        print(f"wrote {len(doc['dataValues'])} data values for {', '.join(months)} to {out}")
        return 0
    # fhir: the report's detection and the temperature intervals, in one pass over the samples
    from .fhir_phd import TappedSource, summary

    if args.every_min <= 0:
        raise BadInput("--every-min must be > 0")
    src = TappedSource(_source(args), args.every_min * 60.0)
    rep = _build_report(src, False, **_report_args(args, settings))
    readings = src.readings.result()
    doc = fhir_bundle(readings, rep, args.every_min * 60.0)
    write_json(doc, out)
    print(settings.line())
    print(
        f"wrote {len(doc['entry'])} resources of {len(rep.straps)} straps to {out}: {summary(doc)}"
    )
    return 0


def _validate(args: argparse.Namespace) -> int:
    from kmc_host.detect import zone

    from .detection import detect_period
    from .roster import load_roster
    from .validate import compare, load_observer_log, write_agreement

    zone(args.tz)  # a bad zone or config file fails before the samples are read
    settings = _settings(args)
    roster = load_roster(args.roster) if args.roster else None
    observed = load_observer_log(args.observer_log, roster)
    from .samples_io import SampleReader

    reader = SampleReader(args.samples, skip_invalid=args.skip_invalid)
    detected = reader.consume(
        lambda chunks: detect_period(chunks, settings.detector, keep_trace=False)
    )
    for line in reader.report.lines():
        print(line)
    print(settings.line())
    agreement = compare({d: r for d, (r, _) in detected.items()}, observed, args.tz)
    for line in agreement.lines():
        print(line)
    if args.out:
        files = write_agreement(agreement, Path(args.out), settings)
        print("wrote " + ", ".join(str(p) for p in files))
    return 0


CONFIG_HELP = (
    "TOML file whose [detector] section (and [detector.thresholds_c]) sets the detector, as the "
    "gateway reads it; a gateway's whole config file will do (default: the built-in settings)"
)


def add_commands(sub: Any) -> None:
    """The researchers' commands."""
    a = sub.add_parser(
        "analyze", help="detect sessions, hours per day and alerts in a samples file"
    )
    a.add_argument("samples", help="samples file (.csv, .csv.gz or .parquet)")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--tz", default="UTC", help="facility time zone, IANA name (default UTC)")
    a.add_argument("--roster", help="roster CSV: device,infant_id,birth_time,birth_weight_g")
    a.add_argument(
        "--skip-invalid",
        action="store_true",
        help="leave out invalid rows (counted and listed in the summary) instead of stopping",
    )
    a.add_argument(
        "--min-monitored-hours",
        type=float,
        default=20.0,
        help="hours of data a day needs to count in the coverage indicators (default 20)",
    )
    a.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    a.set_defaults(run=_analyze)

    x = sub.add_parser(
        "export",
        help="DHIS2 dataValueSets, the DHIS2 metadata they need, or a FHIR R4 Bundle",
    )
    x.add_argument(
        "format",
        choices=["dhis2", "dhis2-metadata", "fhir"],
        help="dhis2-metadata: data elements, data set and indicators to import once (no samples)",
    )
    x.add_argument("samples", nargs="?", help="samples file (.csv, .csv.gz or .parquet)")
    x.add_argument("--influx", help="TOML file with an [influx] section (the sink's will do)")
    x.add_argument("--out", required=True, help="JSON file to write")
    x.add_argument("--mapping", help="dhis2: mapping TOML (deploy/dhis2-mapping.example.toml)")
    x.add_argument("--every-min", type=float, default=15.0, help="fhir: minutes per Observation")
    x.add_argument("--from", dest="date_from", help="first local date, YYYY-MM-DD")
    x.add_argument("--to", dest="date_to", help="last local date, YYYY-MM-DD (included)")
    x.add_argument("--site", default="", help="site (InfluxDB tag; picks the DHIS2 org unit)")
    x.add_argument("--ward", default="", help="ward (InfluxDB tag; picks the DHIS2 org unit)")
    x.add_argument("--tz", default="UTC", help="facility time zone (months and days are local)")
    x.add_argument("--roster", help="roster CSV (eligibility, infant pseudonyms)")
    x.add_argument("--skip-invalid", action="store_true")
    x.add_argument("--min-monitored-hours", type=float, default=20.0)
    x.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    x.set_defaults(run=_export)

    r = sub.add_parser(
        "report",
        help="per-infant and ward KMC report (CSV, Parquet, HTML) from a samples file or InfluxDB",
    )
    r.add_argument("samples", nargs="?", help="samples file (.csv, .csv.gz or .parquet)")
    r.add_argument("--influx", help="TOML file with an [influx] section (the sink's will do)")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--from", dest="date_from", help="first local date, YYYY-MM-DD")
    r.add_argument("--to", dest="date_to", help="last local date, YYYY-MM-DD (included)")
    r.add_argument("--site", help="site (InfluxDB tag; a label for files)")
    r.add_argument("--ward", help="ward (InfluxDB tag; a label for files)")
    r.add_argument("--tz", default="UTC", help="facility time zone, IANA name (default UTC)")
    r.add_argument(
        "--roster", help="roster CSV: device,infant_id,birth_time,birth_weight_g[,admission_time]"
    )
    r.add_argument("--skip-invalid", action="store_true", help="files: leave out invalid rows")
    r.add_argument("--min-monitored-hours", type=float, default=20.0)
    r.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    r.set_defaults(run=_report)

    v = sub.add_parser(
        "validate", help="agreement of detected sessions with a time-stamped observer log"
    )
    v.add_argument("samples", help="samples file (.csv, .csv.gz or .parquet)")
    v.add_argument("observer_log", help="CSV: device (or infant_id with --roster),start,end")
    v.add_argument("--tz", default="UTC", help="facility time zone for the per-day hours")
    v.add_argument("--roster", help="roster CSV, to map an observer log's infant_id to straps")
    v.add_argument(
        "--out", help="folder for session_agreement.csv, daily_agreement.csv, agreement.csv"
    )
    v.add_argument("--skip-invalid", action="store_true", help="leave out invalid sample rows")
    v.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    v.set_defaults(run=_validate)

    s = sub.add_parser("simulate", help="write a simulated ward's samples and its ground truth")
    s.add_argument("--devices", type=int, default=10, help="number of straps")
    s.add_argument("--days", type=float, default=3.0, help="days to simulate")
    s.add_argument("--out", required=True, help="samples file to write (.csv or .parquet)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--tz", default="UTC", help="time zone whose midnight starts the simulation")
    s.add_argument("--start", default="2026-03-02", help="first local date (YYYY-MM-DD)")
    s.add_argument("--truth", help="truth folder (default: beside --out, named <stem>_truth)")
    s.add_argument(
        "--noise", type=float, default=0.02, help="infant sensor noise, SD in C (default 0.02)"
    )
    s.set_defaults(run=_simulate)
