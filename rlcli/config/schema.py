"""The one typed config schema of rlcli.

A run's configuration is a :class:`Config`: the common sections ``run``, ``env`` and ``policy`` plus the
sections its algorithm uses (``ppo`` for PPO, ``ppo`` and ``vapor`` for VAPOR, ...). Each section is a
dataclass whose fields are declared with :func:`rlcli.config.fields.option` (type, default, help, range).
Which sections an algorithm uses is part of its registration (:mod:`rlcli.registry`); nothing else lists
options, and :func:`build_config` makes every check a run would make before its first step.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from rlcli import registry
from rlcli.config.fields import ConfigError, check_range, close_match, coerce, type_name
from rlcli.config.sections import (  # noqa: F401 - the section classes, importable from here as before
    EnvConfig,
    PolicyConfig,
    PPOConfig,
    RNDConfig,
    RNDPPOConfig,
    RunConfig,
    VaporConfig,
)

COMMON_SECTIONS: dict[str, type] = {"run": RunConfig, "env": EnvConfig, "policy": PolicyConfig}


def known_algos() -> list[str]:
    """The algorithms ``rlcli train`` (and a study) trains."""
    return [s.name for s in registry.algorithms("train")]


class Config:
    """A fully resolved configuration: ``cfg.run.seed``, ``cfg.ppo.learning_rate``, ...

    ``section_types`` fixes which sections exist; everything is validated on construction.
    """

    def __init__(self, algo: str, sections: dict[str, Any]):
        self.algo = algo
        self._sections = sections

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("_sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"config of algo '{self.__dict__.get('algo')}' has no section '{name}'")

    @property
    def sections(self) -> dict[str, Any]:
        return self._sections

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"algo": self.algo}
        for name, sec in self._sections.items():
            out[name] = dataclasses.asdict(sec)
        return out

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    def copy(self) -> Config:
        return Config(self.algo, {k: dataclasses.replace(v) for k, v in self._sections.items()})


def section_types(algo: str) -> dict[str, type]:
    return {**COMMON_SECTIONS, **registry.algo_spec(algo).sections}


def build_section(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown key '{prefix}.{key}'"
                              f"{close_match(f'{prefix}.{key}', [f'{prefix}.{k}' for k in fields])}; "
                              f"see --config-options")
        v = coerce(value, hints[key], f"{prefix}.{key}")
        check_range(v, fields[key].metadata, f"{prefix}.{key}")
        kwargs[key] = v
    return cls(**kwargs)


def build_config(algo: str, layers: list[dict[str, Any]]) -> Config:
    """Merge layers (later wins: defaults < preset < user file < overrides) and validate them."""
    types_ = section_types(algo)
    merged: dict[str, dict[str, Any]] = {name: {} for name in types_}
    for layer in layers:
        for name, values in layer.items():
            if name == "algo":
                if values != algo:
                    raise ConfigError(f"the config is for algo '{values}', but the command trains '{algo}'")
                continue
            if name not in types_:
                hint = close_match(name, list(types_))
                used_by = [a.name for a in registry.algorithms() if name in a.sections]
                why = f" (it belongs to {', '.join(used_by)})" if used_by and not hint else ""
                raise ConfigError(f"unknown section '{name}' for algo '{algo}'{hint}{why}; see --config-options")
            if not isinstance(values, dict):
                raise ConfigError(f"'{name}' must be a table of keys, got {values!r}")
            merged[name].update(values)
    cfg = Config(algo, {name: build_section(cls, merged[name], name) for name, cls in types_.items()})
    registry.check_config(cfg)
    return cfg


def describe_options(algo: str, env: str | None = None, policy: str | None = None,
                     resolved: Config | None = None) -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every option of ``algo`` that applies to a run on ``env`` with ``policy``
    (default: the schema's), in schema order; env and policy keys the run would not read are left out.
    With ``resolved`` (the command's config: preset and overrides applied), defaults are its values."""
    spec = registry.algo_spec(algo)
    if resolved is not None:
        env, policy = resolved.env.id, resolved.policy.name
    # without --env: the first registered env the algorithm learns from (cartpole; darkroom for ad)
    env_spec = registry.env_spec(env or next(e.name for e in registry.environments()
                                             if e.observation in spec.observations))
    applies = {"env": {"id", *registry.env_keys(spec, env_spec)}}
    if spec.command == "train":
        applies["policy"] = {"name", *registry.policy_spec(policy or PolicyConfig().name).keys}
    rows = []
    for name, cls in section_types(algo).items():
        if name == "policy" and name not in applies:
            continue
        hints = typing.get_type_hints(cls)
        defaults = resolved.sections[name] if resolved is not None else cls()
        for f in dataclasses.fields(cls):
            if name in applies and f.name not in applies[name]:
                continue
            if (name, f.name) == ("run", "technique") and spec.techniques == ("baseline",):
                continue
            meta = f.metadata
            help_ = meta.get("help", "")
            choices = meta.get("choices")
            if (name, f.name) == ("env", "id"):
                choices = [e.name for e in registry.environments() if e.observation in spec.observations]
            elif (name, f.name) == ("policy", "name"):
                choices = list(spec.policies)
            if choices:
                help_ += f" [{'|'.join(map(str, choices))}]"
            bounds = [f">= {meta['min']}" if meta.get("min") is not None else "",
                      f"<= {meta['max']}" if meta.get("max") is not None else ""]
            if any(bounds):
                help_ += f" ({', '.join(b for b in bounds if b)})"
            rows.append((f"{name}.{f.name}", type_name(hints[f.name]), repr(getattr(defaults, f.name)), help_))
    return rows
