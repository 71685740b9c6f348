"""Typed config fields: a dataclass field with help text, choices and a range.

Every option rlcli knows is declared with :func:`option`, so one declaration drives validation of presets
and ``--set`` overrides, ``--config-options`` and ``--dry-run``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A user-facing configuration error: one sentence naming the key and the fix (exit code 2)."""


def option(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None,
           max: float | None = None) -> Any:
    """Declare a config field. ``min``/``max`` are inclusive bounds for numbers (and list items)."""
    meta = {"help": help, "choices": choices, "min": min, "max": max}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def close_match(name: str, candidates: list[str]) -> str:
    """' (did you mean X?)' when a candidate is close, else ''."""
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{found[0]}'?)" if found else ""


def type_name(tp: Any) -> str:
    if tp is bool:
        return "bool"
    if tp is int:
        return "int"
    if tp is float:
        return "float"
    if tp is str:
        return "str"
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        return f"list[{type_name(item)}]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp) if a is not type(None)) + " | none"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` (from TOML or a parsed ``--set``) against the annotation ``tp``; return it converted."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        return coerce(value, args[0], key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(float(value)) if value.replace("e", "").replace(".", "").isdigit() else int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, got {value!r}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            text = value.strip().strip("[]")
            value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    raise ConfigError(f"{key} has an unsupported type {tp!r}")


def check_range(value: Any, meta: dict, key: str) -> None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v is None:
            continue
        if meta.get("choices") and v not in meta["choices"]:
            options = ", ".join(map(str, meta["choices"]))
            raise ConfigError(f"{key} must be one of {options}, got {v!r}{close_match(str(v), list(map(str, meta['choices'])))}")
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and isinstance(v, int | float) and v < lo:
            raise ConfigError(f"{key} must be at least {lo}, got {v!r}")
        if hi is not None and isinstance(v, int | float) and v > hi:
            raise ConfigError(f"{key} must be at most {hi}, got {v!r}")
