"""The JSON Schema of each message (`schemas/<leaf>.schema.json`) and the field tables of
docs/mqtt.md, which are generated from them.

`schema(leaf)` loads one (JSON Schema 2020-12). A schema says what the gateway writes, exactly:
no field it does not know (`additionalProperties: false`), times in the gateway's one format.
Reading (`messages`) accepts every message valid under it, and is more lenient only where the
sink always was (unknown fields, other ISO 8601 forms). tests/mqtt/test_mqtt_contract.py holds the
schemas, the message types, the gateway's payloads and the documented examples to each other.

`python -m kmc_host.mqtt.schema docs/mqtt.md` rewrites the field tables between their markers
(`--check`: only say whether they are up to date, exit 1 if not).
"""

from __future__ import annotations

import argparse
import json
import re
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from .topics import LEAVES

__all__ = ["field_table", "generated_leaves", "render_doc", "schema"]

_BLOCK = re.compile(
    r"(<!-- fields of `(\w+)`: generated from .*? -->\n)(.*?)(<!-- end of generated fields -->)",
    re.S,
)
MARKER = (
    "<!-- fields of `{leaf}`: generated from host/kmc_host/mqtt/schemas/{leaf}.schema.json"
    " by `python -m kmc_host.mqtt.schema docs/mqtt.md`; do not edit -->"
)


@cache
def _load(leaf: str) -> str:
    if leaf not in LEAVES:
        raise KeyError(f"no MQTT leaf {leaf!r} (the leaves: {', '.join(LEAVES)})")
    return (files("kmc_host.mqtt") / "schemas" / f"{leaf}.schema.json").read_text(encoding="utf-8")


def schema(leaf: str) -> dict[str, Any]:
    """The JSON Schema of a leaf's message (a fresh copy)."""
    loaded: dict[str, Any] = json.loads(_load(leaf))
    return loaded


def _type(p: dict[str, Any]) -> str:
    if "const" in p:
        return f"`{json.dumps(p['const'])}`"
    if "enum" in p:
        return _either(
            [f"`{v}`" if isinstance(v, str) else f"`{json.dumps(v)}`" for v in p["enum"]]
        )
    if "anyOf" in p:
        return _either([_type(q) for q in p["anyOf"]])
    if p.get("type") == "array":
        return f"[{_type(p['items'])}]"
    if p.get("format") == "date-time":
        return "ISO 8601 UTC time"
    kind = p["type"]
    return _either(kind) if isinstance(kind, list) else str(kind)


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _required(s: dict[str, Any], name: str) -> str:
    if name in s["required"]:
        return "yes"
    when = s.get("if", {}).get("properties", {})
    if name in s.get("then", {}).get("required", ()) and len(when) == 1:
        ((key, cond),) = when.items()
        return f"when `{key}` is `{cond['const']}`"
    return "no"


def field_table(leaf: str) -> str:
    """The markdown table of a leaf's fields: name, type, required, meaning, in wire order."""
    s = schema(leaf)
    rows = ["", "| field | type | required | meaning |", "|---|---|---|---|"]
    for name, p in s["properties"].items():
        rows.append(f"| `{name}` | {_type(p)} | {_required(s, name)} | {p['description']} |")
    return "\n".join(rows) + "\n\n"


def generated_leaves(text: str) -> list[str]:
    """The leaves whose field tables the text holds (between markers), in order."""
    return [m.group(2) for m in _BLOCK.finditer(text)]


def render_doc(text: str) -> str:
    """The text with every generated field table rewritten from its schema."""
    return _BLOCK.sub(lambda m: m.group(1) + field_table(m.group(2)) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kmc_host.mqtt.schema", description=__doc__)
    parser.add_argument("doc", type=Path, help="docs/mqtt.md")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    text = args.doc.read_text(encoding="utf-8")
    missing = sorted(set(LEAVES) - set(generated_leaves(text)))
    if missing:
        print(f"{args.doc}: no generated field table for {', '.join(missing)}; add the marker")
        print(MARKER.format(leaf=missing[0]), "<!-- end of generated fields -->", sep="\n")
        return 1
    new = render_doc(text)
    if new == text:
        return 0
    if args.check:
        print(f"{args.doc}: field tables are stale; run python -m kmc_host.mqtt.schema {args.doc}")
        return 1
    args.doc.write_text(new, encoding="utf-8")
    print(f"{args.doc}: field tables rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
