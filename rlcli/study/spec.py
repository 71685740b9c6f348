"""Study files: an experiment matrix (algorithms x techniques x environments x seeds) in TOML.

::

    [study]
    algorithms = ["ppo", "dqn"]
    techniques = ["baseline", "reg"]
    environments = ["cartpole"]
    seeds = [0, 1, 2]
    exclude = [{algorithm = "es", technique = "gar"}]   # optional: drop matching combinations
    runs_dir = "runs/generalization"                    # run folders: <runs_dir>/<algo>-<env>-<technique>-s<seed>
    workers = 1                                         # runs at a time (--workers overrides)
    shift = [0.0, 0.25, 0.5, 0.75, 1.0]                 # levels of the GRS evaluation after each run
    shift_episodes = 10                                 # episodes per level

    [config.all.run]          # config keys for every run ...
    eval_every = 5000
    [config.cartpole.run]     # ... for every run on an environment ...
    total_steps = 50000
    [config.ppo.ppo]          # ... for every run of an algorithm ...
    num_epochs = 10
    [config."ppo-cartpole".ppo]  # ... and for one algorithm on one environment
    learning_rate = 3e-4

A run's config is built from, later winning: the schema defaults, ``presets/<algo>-<env>.toml`` when it
exists, ``config.all``, ``config.<env>``, ``config.<algo>``, ``config.<algo>-<env>``, then the run's
technique, seed, name and runs_dir. Every run's config is built and validated before anything starts, so
an unknown algorithm, environment, technique or key is an exit-2 error up front.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlcli.config.fields import ConfigError, close_match
from rlcli.config.presets import default_preset_for, read_toml
from rlcli.config.schema import Config, build_config, known_algos
from rlcli.evaluation.grs import DEFAULT_LEVELS, parse_levels
from rlcli.storage.runs import check_runs_dir

STUDY_KEYS = {"algorithms", "techniques", "environments", "seeds", "exclude", "runs_dir", "workers", "shift",
              "shift_episodes"}
MATRIX_KEYS = {"algorithm": "algorithms", "technique": "techniques", "environment": "environments",
               "seed": "seeds"}


@dataclass
class StudyRun:
    """One cell of the matrix."""

    index: int  # position in the plan (ties between equally good runs go to the earlier one)
    algo: str
    env: str
    technique: str
    seed: int
    cfg: Config

    @property
    def name(self) -> str:
        return self.cfg.run.name

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.run.runs_dir) / self.cfg.run.name


@dataclass
class Study:
    path: Path
    runs: list[StudyRun]
    runs_dir: Path
    workers: int
    shift: list[float]
    shift_episodes: int


def run_name(algo: str, env: str, technique: str, seed: int) -> str:
    return f"{algo}-{env.replace(':', '-').lower()}-{technique.replace('+', '-')}-s{seed}"


def _list(table: dict[str, Any], key: str, kind: type, path: Path) -> list:
    values = table.get(key)
    if not isinstance(values, list) or not values or not all(isinstance(v, kind) for v in values):
        raise ConfigError(f"study.{key} in '{path}' must be a non-empty list of {kind.__name__}s")
    if len(set(values)) != len(values):
        raise ConfigError(f"study.{key} in '{path}' lists a value twice: {values}")
    return values


def _check_env(env: str, path: Path) -> None:
    from rlcli.registry import env_spec, refuse_without_variation

    try:
        env_spec(env)
    except ConfigError as e:
        raise ConfigError(f"{e} (in '{path}')") from None
    refuse_without_variation(env, f"a study evaluates every run under shift ('{path}')")


def _excluded(rules: list[dict[str, Any]], combo: dict[str, Any]) -> bool:
    return any(all(combo[k] == v for k, v in rule.items()) for rule in rules)


def load_study(path: str | Path, workers: int | None = None) -> Study:
    """Read and validate a study file; raises ConfigError (exit 2) on anything wrong, before any run."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file '{path}' does not exist")
    data = read_toml(path)
    unknown = set(data) - {"study", "config"}
    if unknown or not isinstance(data.get("study"), dict):
        raise ConfigError(f"'{path}' must have a [study] table (and optional [config.*] tables); "
                          f"unexpected: {', '.join(sorted(unknown)) or 'no [study] table'}")
    table = data["study"]
    for key in table:
        if key not in STUDY_KEYS:
            raise ConfigError(f"unknown key 'study.{key}' in '{path}'{close_match(key, sorted(STUDY_KEYS))}")
    algos = _list(table, "algorithms", str, path)
    techniques = _list(table, "techniques", str, path)
    envs = _list(table, "environments", str, path)
    seeds = _list(table, "seeds", int, path)
    for algo in algos:
        if algo not in known_algos():
            raise ConfigError(f"unknown algorithm '{algo}' in '{path}'{close_match(algo, known_algos())}; "
                              f"choose among {', '.join(known_algos())}")
    for env in envs:
        _check_env(env, path)
    rules = table.get("exclude", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) and r and set(r) <= set(MATRIX_KEYS)
                                              for r in rules):
        raise ConfigError(f"study.exclude in '{path}' must be a list of tables with keys among "
                          f"{', '.join(MATRIX_KEYS)}, e.g. {{algorithm = \"es\", technique = \"gar\"}}")
    lists = {"algorithm": algos, "technique": techniques, "environment": envs, "seed": seeds}
    for rule in rules:
        for key, value in rule.items():
            if value not in lists[key]:
                raise ConfigError(f"study.exclude in '{path}' names {key} {value!r}, which the study does not "
                                  f"list ({', '.join(map(str, lists[key]))})")
    layers = data.get("config", {})
    allowed = {"all", *envs, *algos, *(f"{a}-{e}" for a in algos for e in envs)}
    for key, layer in layers.items():
        if key not in allowed:
            raise ConfigError(f"[config.{key}] in '{path}' names no algorithm or environment of the study"
                              f"{close_match(key, sorted(allowed))}; use all, <env>, <algo> or <algo>-<env>")
        if not isinstance(layer, dict):
            raise ConfigError(f"config.{key} in '{path}' must be a table of config sections")
    runs_dir_value = table.get("runs_dir", f"runs/{path.stem}")
    if not isinstance(runs_dir_value, str) or not runs_dir_value:
        raise ConfigError(f"study.runs_dir in '{path}' must be a folder path, got {runs_dir_value!r}")
    runs_dir = Path(runs_dir_value)
    check_runs_dir(runs_dir)
    runs: list[StudyRun] = []
    for env, algo, technique, seed in itertools.product(envs, algos, techniques, seeds):
        if _excluded(rules, {"algorithm": algo, "technique": technique, "environment": env, "seed": seed}):
            continue
        preset = default_preset_for(algo, env)
        stack = ([read_toml(preset)] if preset else []) + [{"env": {"id": env}}]
        stack += [layers[k] for k in ("all", env, algo, f"{algo}-{env}") if k in layers]
        stack.append({"run": {"technique": technique, "seed": seed, "name": run_name(algo, env, technique, seed),
                              "runs_dir": str(runs_dir)}})
        try:
            cfg = build_config(algo, stack)
        except ConfigError as e:
            raise ConfigError(f"{run_name(algo, env, technique, seed)} in '{path}': {e}") from None
        runs.append(StudyRun(len(runs), algo, env, technique, seed, cfg))
    if not runs:
        raise ConfigError(f"'{path}' excludes every combination; nothing to run")
    n_workers = workers if workers is not None else table.get("workers", 1)
    if not isinstance(n_workers, int) or n_workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {n_workers!r}")
    episodes = table.get("shift_episodes", 10)
    if not isinstance(episodes, int) or episodes < 1:
        raise ConfigError(f"study.shift_episodes in '{path}' must be a positive integer, got {episodes!r}")
    shift = table.get("shift", list(DEFAULT_LEVELS))
    if not isinstance(shift, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in shift):
        raise ConfigError(f"study.shift in '{path}' must be a list of numbers in [0, 1], e.g. [0.0, 0.5, 1.0]; "
                          f"got {shift!r}")
    return Study(path, runs, runs_dir, n_workers, parse_levels(shift), episodes)
