"""Seeding and device selection, and the one place that says which seeds each kind of env gets.

A run with seed ``s`` trains on envs seeded ``s``; its evaluation envs use ``s + EVAL_SEED_OFFSET`` and the
GAS probe envs ``s + PROBE_SEED_OFFSET``, so no two kinds share an episode.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from rlcli.config.fields import ConfigError

EVAL_SEED_OFFSET = 10_000  # evaluation envs never share seeds with training envs
PROBE_SEED_OFFSET = 50_000  # GAS probe envs never share seeds with training or evaluation envs


def seed_everything(seed: int) -> None:
    """Seed python, numpy's global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device is 'cuda' but torch sees no CUDA device; use --device cpu or auto")
    return torch.device(name)
