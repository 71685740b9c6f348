"""Running observation normalisation (the statistics travel in checkpoints)."""

from __future__ import annotations

import numpy as np
import torch


class RunningMeanStd:
    """Mean and variance of a stream of arrays of shape ``shape`` (parallel Welford / Chan et al.)."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0):
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = 1e-4
        self.clip = clip
        self._torch: tuple[torch.Tensor, torch.Tensor] | None = None  # (mean, std) cache, reset by update()

    def update(self, batch: np.ndarray) -> None:
        """``batch``: (N, *shape)."""
        b_mean, b_var, n = batch.mean(0), batch.var(0), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + b_var * n + delta**2 * self.count * n / total) / total
        self.count = total
        self._torch = None

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(N, *shape) -> float32 (x - mean) / std, clipped to [-clip, clip]."""
        if self._torch is None or self._torch[0].device != x.device:
            self._torch = (torch.as_tensor(self.mean, dtype=torch.float32, device=x.device),
                           torch.as_tensor(np.sqrt(self.var + 1e-8), dtype=torch.float32, device=x.device))
        mean, std = self._torch
        return ((x.float() - mean) / std).clamp(-self.clip, self.clip)

    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "var": self.var, "count": np.float64(self.count)}

    def load_state(self, saved: dict) -> None:
        self.mean = np.asarray(saved["mean"], dtype=np.float64).copy()
        self.var = np.asarray(saved["var"], dtype=np.float64).copy()
        self.count = float(np.asarray(saved["count"]))
        self._torch = None
