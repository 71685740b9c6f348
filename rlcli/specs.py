"""What a registration says: :class:`AlgoSpec`, :class:`EnvSpec` and :class:`PolicySpec`.

Small frozen dataclasses, torch-free and numpy-free: the tables of built-in specs
(``rlcli/algos/__init__.py``, ``rlcli/envs/__init__.py``, ``rlcli/nets/__init__.py``) are read by tab
completion and ``rlcli --help``, which must not pay for torch. The code behind a spec is named by a
``"module:attribute"`` target and imported by :func:`load_target` only when a run needs it.
:mod:`rlcli.registry` holds the tables and answers every question about them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OBSERVATION_KINDS = ("vector", "image", "discrete")  # flat feature vectors; (C, H, W) uint8 frames; a cell index


def load_target(target: str | Callable[..., Any]) -> Any:
    """``"rlcli.algos.ppo:PPO"`` -> the class (imports the module); a callable (a plugin's) is returned as is."""
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class AlgoSpec:
    name: str
    target: str  # "module:Class" of the Algorithm subclass
    description: str  # one line, shown in help and completion
    sections: dict[str, type] = field(default_factory=dict)  # config sections beyond run/env/policy
    observations: tuple[str, ...] = OBSERVATION_KINDS  # observation kinds it learns from
    techniques: tuple[str, ...] = ("baseline", "reg")  # parts of run.technique it implements
    variation: bool = True  # trains on varied environments (gar's levels, GRS shift evaluation)
    policies: tuple[str, ...] = ("mlp", "cnn")  # policy.name values it can build
    devices: tuple[str, ...] = ("cpu", "cuda")
    command: str = "train"  # the subcommand that trains it (ad: distill)
    env_keys: tuple[str, ...] | None = None  # env.* keys it passes on to the env (None: all the env reads)
    check: Callable[[Any], None] | None = None  # check(cfg) raising ConfigError for combinations it cannot run


@dataclass(frozen=True)
class EnvSpec:
    name: str  # the family: env.id is NAME or NAME:VARIANT
    description: str
    make_vec: str | Callable[..., Any]  # "module:function" (env_cfg, num_envs, seed) -> VectorEnv
    make_single: str | Callable[..., Any]  # "module:function" (env_cfg, seed, render_mode) -> Env
    package: str  # pip requirement that installs it, for the error message
    modules: tuple[str, ...] = ()  # top-level modules it needs, any one of them (checked without importing)
    observation: str = "vector"  # one of OBSERVATION_KINDS
    variation: bool = False  # env.variation_level changes it
    keys: tuple[str, ...] = ("id", "num_envs", "max_episode_steps")  # env.* keys it reads
    variants: str | None = None  # "module:function" () -> names after "NAME:" (games, levels), torch-free
    check_id: str | None = None  # "module:function" (env_id) raising ConfigError for an id it cannot make


@dataclass(frozen=True)
class PolicySpec:
    name: str
    target: str  # "module:function" (policy_cfg, obs_space, action_space) -> ActorCritic
    description: str
    observations: tuple[str, ...] = OBSERVATION_KINDS
    attention: bool = False  # has attention maps (`rlcli eval --attention`)
    dropout: bool = False  # has dropout masks (`rlcli eval --mc-dropout`)
    keys: tuple[str, ...] = ()  # policy.* keys it reads besides name
    divides: tuple[tuple[str, str], ...] = ()  # (a, b): policy.a must divide policy.b (attention heads, width)
