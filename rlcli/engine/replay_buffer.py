"""The replay buffer of off-policy learners (DQN), with n-step returns computed at sampling time.

Transitions are stored as a ring of ``capacity`` vector steps x ``num_envs`` envs, so each env's steps stay
in time order: an n-step return is read off consecutive rows of one env column, and a learner can sample
from a subset of env columns (one variation level of a :class:`~rlcli.envs.variation.LevelsVectorEnv`).

:meth:`ReplayBuffer.state` and :meth:`ReplayBuffer.load_state` save and restore the contents bit for bit as
plain arrays (checkpoints store them as HDF5 datasets). Only the rows written so far are saved, and
``next_obs`` only where it is not already the next row's ``obs`` (episode ends and the newest row): a step's
next observation is the following step's observation otherwise, so the saved buffer is about half the size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlcli.config.fields import ConfigError


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

    # -- checkpoint state ---------------------------------------------------------------------------------
    def _next_is_next_row(self) -> np.ndarray:
        """(rows, num_envs) bool: ``next_obs[t]`` equals ``obs[t + 1]`` byte for byte (so need not be saved)."""
        n = self.rows
        succ = (np.arange(n) + 1) % self.capacity
        a = np.ascontiguousarray(self.next_obs[:n]).reshape(n, self.num_envs, -1).view(np.uint8)
        b = np.ascontiguousarray(self.obs[succ]).reshape(n, self.num_envs, -1).view(np.uint8)
        same = (a == b).all(axis=2)
        same[(self.pos - 1) % self.capacity] = False  # the newest row has no successor yet (or the oldest row)
        return same

    def state(self) -> dict[str, np.ndarray]:
        """The written rows as arrays; restores exactly with :meth:`load_state` on a buffer of the same size."""
        n = self.rows
        stored = np.argwhere(~self._next_is_next_row()) if n else np.zeros((0, 2), np.int64)
        return {"obs": self.obs[:n], "actions": self.actions[:n], "rewards": self.rewards[:n],
                "terminated": self.terminated[:n], "ended": self.ended[:n],
                "next_obs_at": stored.astype(np.int64), "next_obs": self.next_obs[stored[:, 0], stored[:, 1]],
                "position": np.array([self.pos, self.rows, self.capacity, self.num_envs], dtype=np.int64)}

    def load_state(self, saved: dict[str, Any]) -> None:
        pos, rows, capacity, num_envs = (int(v) for v in np.asarray(saved["position"]))
        if (capacity, num_envs) != (self.capacity, self.num_envs) or np.asarray(saved["obs"]).shape != (
                rows, num_envs, *self.obs.shape[2:]):
            raise ConfigError(f"the checkpoint's replay buffer holds {capacity} steps x {num_envs} envs, this run's "
                              f"{self.capacity} x {self.num_envs}; resume with the dqn.buffer_size and env.num_envs "
                              "it was saved with, or set dqn.checkpoint_replay=false (inexact resume)")
        self.pos, self.rows = pos, rows
        for name in ("obs", "actions", "rewards", "terminated", "ended"):
            getattr(self, name)[:rows] = np.asarray(saved[name])
        succ = (np.arange(rows) + 1) % self.capacity
        self.next_obs[:rows] = self.obs[succ]
        at = np.asarray(saved["next_obs_at"], dtype=np.int64).reshape(-1, 2)
        self.next_obs[at[:, 0], at[:, 1]] = np.asarray(saved["next_obs"])
