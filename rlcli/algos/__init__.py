"""Learners, one module each. ``ALGORITHMS`` maps an algo name to its class (imported lazily)."""

from __future__ import annotations

import importlib

ALGORITHMS: dict[str, str] = {
    "ppo": "rlcli.algos.ppo:PPO",
    "rnd": "rlcli.algos.rnd:RND",
    "vapor": "rlcli.algos.vapor:VAPOR",
    "dqn": "rlcli.algos.dqn:DQN",
    "es": "rlcli.algos.es:ES",
    "a2c": "rlcli.algos.a2c:A2C",
    "ad": "rlcli.ad.distill:AD",
}


def algorithm_class(algo: str) -> type:
    module, name = ALGORITHMS[algo].split(":")
    return getattr(importlib.import_module(module), name)
