"""What the training loop drives: an :class:`Algorithm` (PPO, VAPOR, DQN, ES, RND, ...).

An algorithm owns its envs, networks and optimizers. The loop calls ``iteration()`` until
``env_steps >= run.total_steps`` and handles everything else: progress, metrics, evaluation,
checkpoints, Ctrl-C and resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rlcli.engine.timing import PhaseTimer
from rlcli.storage.checkpoint import Checkpoint


@dataclass
class IterationResult:
    metrics: dict[str, float] = field(default_factory=dict)  # logged to metrics.h5 at the current step
    episode_returns: list[float] = field(default_factory=list)  # episodes that finished this iteration
    episode_lengths: list[int] = field(default_factory=list)


class Algorithm:
    """Base class. Subclasses set ``self.env_steps`` and implement the methods below."""

    env_steps: int = 0
    evaluates: bool = True  # False: the loop never evaluates it (nor keeps a best checkpoint)

    def iteration(self, timer: PhaseTimer) -> IterationResult:
        """Collect experience and learn from it once; advance ``env_steps``."""
        raise NotImplementedError

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions (B,) for a batch of observations, for evaluation."""
        raise NotImplementedError

    def evaluate(self, cfg: Any, episodes: int, deterministic: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(returns (N,), lengths (N,)) of the loop's evaluation; by default ``episodes`` episodes of
        :meth:`act` in the eval env. Learners that evaluate differently (AD: in context) override it."""
        from rlcli.engine.episodes import run_episodes  # imports the env registry: only when evaluating
        from rlcli.engine.seeding import EVAL_SEED_OFFSET

        return run_episodes(lambda obs: self.act(obs, deterministic), cfg.env, episodes,
                            seed=cfg.run.seed + EVAL_SEED_OFFSET)

    def eval_metrics(self) -> dict[str, float]:
        """Extra scalars of the last :meth:`evaluate`, logged beside ``eval_return`` (none by default)."""
        return {}

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(tensors, json documents) that restore the algorithm exactly, for a checkpoint."""
        raise NotImplementedError

    def load_state(self, ckpt: Checkpoint) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def rng_state() -> dict[str, torch.Tensor]:
    return {"torch": torch.get_rng_state()}


def load_rng_state(saved: dict[str, Any]) -> None:
    torch.set_rng_state(saved["torch"].to(torch.uint8))
