"""Evaluation episodes: play N whole episodes of a policy in a vectorized copy of the env (the training loop's
evaluation and `rlcli eval` both use it)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rlcli.envs.registry import make_vec_env


def run_episodes(act: Callable[[np.ndarray], np.ndarray], env_cfg, episodes: int, seed: int,
                 max_steps: int = 100_000,
                 on_finished: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns (returns (N,), lengths (N,)) of the first episode of each of N parallel envs.

    ``act`` maps a batch of observations to actions. Envs whose episode finished keep being stepped (their
    later episodes are ignored), which keeps the batch shape fixed and the code simple. ``on_finished`` is
    called with the number of finished episodes whenever it grows (progress displays).
    """
    env = make_vec_env(env_cfg, seed, num_envs=episodes)
    try:
        obs, _ = env.reset(seed=seed)
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        running = np.ones(episodes, dtype=bool)
        for _ in range(max_steps):
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            returns += reward * running
            lengths += running
            was_running = int(running.sum())
            running &= ~(terminated | truncated)
            if on_finished is not None and running.sum() < was_running:
                on_finished(episodes - int(running.sum()))
            if not running.any():
                break
        return returns, lengths
    finally:
        env.close()
