"""Running statistics for normalising observations and rewards (as in the RND and PPO baselines code)."""

from __future__ import annotations

from typing import Any

import torch


class RunningMeanStd:
    """Elementwise running mean and variance of a stream of batches (Chan et al.'s parallel update).

    Statistics are float64 tensors of ``shape`` on ``device``; ``count`` starts at a tiny epsilon so the
    first update is well defined.
    """

    def __init__(self, shape: tuple[int, ...] = (), device: torch.device | str = "cpu", epsilon: float = 1e-4):
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = torch.tensor(epsilon, dtype=torch.float64, device=device)

    def update(self, x: torch.Tensor) -> None:
        """x: (N, *shape); the statistics absorb its N samples."""
        x = x.to(torch.float64)
        self.update_from_moments(x.mean(0), x.var(0, unbiased=False), x.shape[0])

    def update_from_moments(self, batch_mean: torch.Tensor, batch_var: torch.Tensor, batch_count: int) -> None:
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta.pow(2) * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: torch.Tensor, clip: float | None = None) -> torch.Tensor:
        """(x - mean) / std as float32, optionally clipped to [-clip, clip]."""
        out = ((x.to(torch.float64) - self.mean) / self.var.sqrt().clamp_min(1e-8)).float()
        return out.clamp(-clip, clip) if clip is not None else out

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state(self, saved: dict[str, Any]) -> None:
        device = self.mean.device
        self.mean = torch.as_tensor(saved["mean"], dtype=torch.float64).to(device)
        self.var = torch.as_tensor(saved["var"], dtype=torch.float64).to(device)
        self.count = torch.as_tensor(saved["count"], dtype=torch.float64).to(device)


class DiscountedReturnFilter:
    """Per-env running discounted sum of rewards, r_t + gamma * r_{t-1} + ..., never reset (non-episodic).

    RND divides intrinsic rewards by the running std of these sums, which keeps their scale steady.
    """

    def __init__(self, num_envs: int, gamma: float, device: torch.device | str = "cpu"):
        self.gamma = gamma
        self.returns = torch.zeros(num_envs, dtype=torch.float64, device=device)

    def update(self, rewards: torch.Tensor) -> torch.Tensor:
        """rewards: (B,) of one step; returns the updated (B,) running sums."""
        self.returns = self.returns * self.gamma + rewards.to(torch.float64)
        return self.returns
