"""kmc_host.timefmt: the one ISO 8601 UTC writer, scalar and vectorised alike."""

from __future__ import annotations

import datetime as dt

import numpy as np

from kmc_host.timefmt import ISO_UTC, iso_utc, iso_utc_array


def test_whole_seconds_utc_with_z():
    assert iso_utc(1772400000.0) == "2026-03-01T21:20:00Z"
    assert iso_utc(0.0) == "1970-01-01T00:00:00Z"
    assert ISO_UTC == "%Y-%m-%dT%H:%M:%SZ"


def test_rounding_halves_to_even_or_truncating():
    t0 = 1772400000.0
    assert [iso_utc(t0 + f)[-3:] for f in (0.4, 0.5, 0.6, 1.5, 2.5)] == [
        "00Z",
        "00Z",
        "01Z",
        "02Z",
        "02Z",
    ]
    # truncate drops the fraction, as datetime.strftime does (the FHIR export's periods)
    assert iso_utc(t0 + 0.9, truncate=True) == "2026-03-01T21:20:00Z"
    assert iso_utc(t0 + 0.9, truncate=True) == (
        dt.datetime.fromtimestamp(t0 + 0.9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def test_the_array_form_writes_what_the_scalar_writes():
    rng = np.random.default_rng(3)
    t = np.concatenate(
        (
            1772400000.0 + np.arange(-3, 4) * 0.5,  # halves both ways
            rng.uniform(0, 4.1e9, 2000),  # 1970 to 2099
            np.round(rng.uniform(1.7e9, 1.8e9, 500)),
        )
    )
    assert iso_utc_array(t).tolist() == [iso_utc(x) for x in t.tolist()]


def test_no_time_is_an_empty_cell():
    out = iso_utc_array(np.array([np.nan, 1772400000.0]))
    assert out.tolist() == ["", "2026-03-01T21:20:00Z"]
    assert iso_utc_array(np.empty(0)).tolist() == []
