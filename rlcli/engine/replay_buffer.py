"""The replay buffer of off-policy learners (DQN), with n-step returns computed at sampling time.

Transitions are stored as a ring of ``capacity`` vector steps x ``num_envs`` envs, so each env's steps stay
in time order: an n-step return is read off consecutive rows of one env column, and a learner can sample
from a subset of env columns (one variation level of a :class:`~rlcli.envs.variation.LevelsVectorEnv`).
"""

from __future__ import annotations

import numpy as np
import torch


class ReplayBuffer:
    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype,
                 device: torch.device):
        """``capacity``: vector steps kept (transitions kept = capacity * num_envs)."""
        self.capacity, self.num_envs, self.device = capacity, num_envs, device
        self.obs = np.zeros((capacity, num_envs, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros_like(self.obs)  # the true next observation (the final one at an episode end)
        self.actions = np.zeros((capacity, num_envs), dtype=np.int64)
        self.rewards = np.zeros((capacity, num_envs), dtype=np.float32)
        self.terminated = np.zeros((capacity, num_envs), dtype=bool)  # no bootstrap after this step
        self.ended = np.zeros((capacity, num_envs), dtype=bool)  # terminated or truncated: n-step sums stop
        self.pos = 0  # next row to write
        self.rows = 0  # rows written so far, at most capacity

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray) -> None:
        """One vector step: arrays with leading dim ``num_envs``."""
        p = self.pos
        self.obs[p], self.next_obs[p], self.actions[p] = obs, next_obs, actions
        self.rewards[p], self.terminated[p] = rewards, terminated
        self.ended[p] = np.asarray(terminated) | np.asarray(truncated)
        self.pos = (p + 1) % self.capacity
        self.rows = min(self.rows + 1, self.capacity)

    def can_sample(self, n_step: int) -> bool:
        return self.rows >= n_step

    def sample(self, batch_size: int, rng: np.random.Generator, n_step: int = 1, gamma: float = 0.99,
               envs: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """A batch of n-step transitions from env columns ``envs`` (default all).

        Returns obs (N, *obs), actions (N,), returns (N,) = sum_{j<=m} gamma^j r_{t+j} where m is the last step
        before the episode ended (at most n-1), next_obs (N, *obs) = the observation after step t+m, and
        discounts (N,) = gamma^(m+1), or 0 when the episode terminated at t+m (no bootstrap).
        """
        oldest = self.pos if self.rows == self.capacity else 0
        start = (oldest + rng.integers(0, self.rows - n_step + 1, size=batch_size)) % self.capacity
        env = rng.choice(np.arange(self.num_envs) if envs is None else envs, size=batch_size)
        rows = (start[:, None] + np.arange(n_step)[None, :]) % self.capacity  # (N, n)
        cols = env[:, None]
        ended = self.ended[rows, cols]
        # alive[j]: step t+j belongs to the episode of step t (no episode end among steps t..t+j-1)
        alive = np.concatenate([np.ones((batch_size, 1), bool), np.cumprod(~ended[:, :-1], axis=1).astype(bool)],
                               axis=1)
        returns = (self.rewards[rows, cols] * alive * gamma ** np.arange(n_step)).sum(1)
        last = alive.sum(1) - 1  # m
        last_row = rows[np.arange(batch_size), last]
        discounts = gamma ** (last + 1.0) * ~self.terminated[last_row, env]

        def t(x: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
            return torch.as_tensor(x, dtype=dtype, device=self.device)

        return {"obs": t(self.obs[start, env]), "actions": t(self.actions[start, env]),
                "returns": t(returns, torch.float32), "next_obs": t(self.next_obs[last_row, env]),
                "discounts": t(discounts, torch.float32)}
