"""A tiny TOML emitter for proxy configs (Debian's Python has tomllib to read, nothing to write).

Supports what configs use: tables (nested dicts), arrays of tables (lists of dicts), strings,
booleans, integers, floats and arrays of those. Round-trips through tomllib (tested).
"""

from __future__ import annotations

import math
import re
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    if not isinstance(k, str):
        raise TypeError(f"TOML keys must be strings, got {k!r}")
    return k if _BARE_KEY.match(k) else _string(k)


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (list, tuple)):
        if any(isinstance(x, dict) for x in v):
            return "[" + ", ".join(_inline_table(x) for x in v) + "]"
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return _inline_table(v)
    raise TypeError(f"cannot write {type(v).__name__} to TOML: {v!r}")


def _inline_table(d: dict) -> str:
    return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in d.items() if v is not None) + " }"


def _is_table_array(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(x, dict) for x in v)


def _emit(d: dict, path: list[str], out: list[str]) -> None:
    scalars = [(k, v) for k, v in d.items()
               if v is not None and not isinstance(v, dict) and not _is_table_array(v)]
    for k, v in scalars:
        out.append(f"{_key(k)} = {_value(v)}")
    for k, v in d.items():
        if isinstance(v, dict):
            sub = path + [_key(k)]
            if out:
                out.append("")
            out.append("[" + ".".join(sub) + "]")
            _emit(v, sub, out)
        elif _is_table_array(v):
            sub = path + [_key(k)]
            for item in v:
                if out:
                    out.append("")
                out.append("[[" + ".".join(sub) + "]]")
                _emit(item, sub, out)


def dumps(doc: dict) -> str:
    """TOML text for `doc`. Keys whose value is None are left out."""
    out: list[str] = []
    _emit(doc, [], out)
    return "\n".join(out) + "\n"
