"""InfluxDB line protocol, written by hand for speed and checked against influxdb-client's Point.

One line per point: `measurement,tag=v,tag=v field=v,field=v timestamp`. Tag keys and values
escape `,`, `=` and space (a backslash stays as it is, as influxdb-client writes it); string field values are quoted with `"` and `\\` escaped; integers
end in `i`; booleans are `true`/`false`. Timestamps here are integer nanoseconds (the writes say
`precision=ns`). A point with the same measurement, tag set and timestamp as a stored one
overwrites its fields: that is what makes a replayed MQTT message harmless.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

Field = float | int | bool | str


def _escape_key(text: str) -> str:
    return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _escape_measurement(text: str) -> str:
    return text.replace(",", "\\,").replace(" ", "\\ ")


def _field(value: Field) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def tag_set(tags: Mapping[str, str]) -> str:
    """`,k=v,...` sorted by key (InfluxDB's own order); empty values are left out."""
    return "".join(
        f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(tags.items()) if v != ""
    )


def line(
    measurement: str, tags: Mapping[str, str] | str, fields: Mapping[str, Field | None], ts: int
) -> str | None:
    """One point, tags and fields sorted by key as influxdb-client writes them; None fields, NaN
    and infinities are left out; None when no field is left.

    `tags` may be a ready `tag_set()` string, so a batch of samples escapes its tags once."""
    body = ",".join(
        f"{_escape_key(k)}={_field(v)}"
        for k, v in sorted(fields.items())
        if v is not None and not (isinstance(v, float) and not math.isfinite(v))
    )
    if not body:
        return None
    head = _escape_measurement(measurement) + (tags if isinstance(tags, str) else tag_set(tags))
    return f"{head} {body} {ts}"
