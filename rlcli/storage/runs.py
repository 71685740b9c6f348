"""The run folder layout: ``runs/<name>/{config.toml, metrics.h5, checkpoints/*.h5, videos/, tb/, profile/}``."""

from __future__ import annotations

import os
from pathlib import Path

from rlcli.config.fields import ConfigError

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.h5"
CHECKPOINT_LAST = "checkpoints/last.h5"
CHECKPOINT_BEST = "checkpoints/best.h5"


def write_config(run_dir: Path, cfg) -> None:
    """Write the fully resolved config atomically (secrets never live in the config)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CONFIG_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(cfg.to_toml())
    os.replace(tmp, path)


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run folders among ``paths`` (each a run folder or a folder of runs, searched recursively)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ConfigError(f"'{p}' does not exist")
        if is_run_dir(p):
            found.append(p)
        else:
            found.extend(sorted(c.parent for c in p.rglob(CONFIG_FILE)))
    return found


def resolve_checkpoint(run_or_checkpoint: str | Path, which: str = "last") -> Path:
    """A run folder -> its ``checkpoints/<which>.h5``; a ``.h5`` path -> itself."""
    p = Path(run_or_checkpoint)
    if p.is_file():
        return p
    if p.is_dir():
        ckpt = p / "checkpoints" / f"{which}.h5"
        if not ckpt.is_file():
            ckpt = p / CHECKPOINT_LAST
        if ckpt.is_file():
            return ckpt
        raise ConfigError(f"'{p}' has no checkpoint (expected {p / CHECKPOINT_LAST})")
    raise ConfigError(f"'{p}' is neither a run folder nor a checkpoint file")
