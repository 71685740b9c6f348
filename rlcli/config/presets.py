"""Presets and overrides: find a preset, read TOML files, parse ``--set key=value``, resolve a Config."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from rlcli.config.fields import ConfigError
from rlcli.config.schema import Config, build_config

PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets"


def preset_dirs() -> list[Path]:
    """Where preset names are looked up: ./presets first, then the presets/ shipped beside the package."""
    dirs = [Path.cwd() / "presets", PRESETS_DIR]
    return [d for i, d in enumerate(dirs) if d.is_dir() and d.resolve() not in {x.resolve() for x in dirs[:i]}]


def available_presets() -> list[str]:
    return sorted({p.stem for d in preset_dirs() for p in d.glob("*.toml")})


def find_preset(name_or_file: str) -> Path:
    """A preset name (``ppo-cartpole``) or a path to a TOML file."""
    path = Path(name_or_file)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"preset file '{name_or_file}' does not exist")
        return path
    for d in preset_dirs():
        candidate = d / f"{name_or_file}.toml"
        if candidate.is_file():
            return candidate
    from rlcli.config.fields import close_match

    raise ConfigError(f"unknown preset '{name_or_file}'{close_match(name_or_file, available_presets())}; "
                      f"available: {', '.join(available_presets()) or 'none'}")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"'{path}' is not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"cannot read '{path}': {e.strerror}") from None


def parse_override(text: str) -> dict[str, Any]:
    """``ppo.learning_rate=1e-3`` -> ``{"ppo": {"learning_rate": 1e-3}}``; the value is read as TOML."""
    if "=" not in text:
        raise ConfigError(f"--set expects section.key=value, got '{text}'")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set key '{key}' must look like section.key (e.g. ppo.learning_rate)")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as cpu or tanh
    return {parts[0]: {parts[1]: value}}


def default_preset_for(algo: str, env_id: str) -> Path | None:
    """The preset ``rlcli train ALGO --env ENV`` uses without ``--preset``: ``presets/<algo>-<env>.toml``
    (env ``atari:Pong`` -> ``pong``) when it exists, else the first preset (by name) that declares this
    ``algo`` and ``[env] id`` (such as ``montezuma-rnd-vit.toml``)."""
    env_key = env_id.split(":")[-1].lower()
    for d in preset_dirs():
        candidate = d / f"{algo}-{env_key}.toml"
        if candidate.is_file():
            return candidate
    for d in preset_dirs():
        for candidate in sorted(d.glob("*.toml")):
            data = read_toml(candidate)
            env_table = data.get("env")
            if (data.get("algo") == algo and isinstance(env_table, dict)
                    and str(env_table.get("id", "")).lower() == env_id.lower()):
                return candidate
    return None


def resolve_config(algo: str, *, env: str | None = None, preset: str | None = None,
                   overrides: list[str] = (), extra: dict[str, Any] | None = None) -> Config:
    """Resolve a run's config: schema defaults < preset < ``--set`` overrides < ``extra`` (CLI flags).

    With no preset, ``presets/<algo>-<env>.toml`` is used when it exists.
    """
    layers: list[dict[str, Any]] = []
    env_id = env or "cartpole"
    preset_path = find_preset(preset) if preset else default_preset_for(algo, env_id)
    if preset_path is not None:
        layer = read_toml(preset_path)
        # the preset's env is kept unless the command names another
        layers.append(layer)
    if env is not None:
        layers.append({"env": {"id": env}})
    for text in overrides:
        layers.append(parse_override(text))
    if extra:
        layers.append(extra)
    return build_config(algo, layers)


def load_run_config(path: Path) -> Config:
    """The resolved config saved in a run folder (``config.toml``)."""
    data = read_toml(path)
    algo = data.get("algo")
    if not isinstance(algo, str):
        raise ConfigError(f"'{path}' has no 'algo' key; is it a run's config.toml?")
    return build_config(algo, [data])
