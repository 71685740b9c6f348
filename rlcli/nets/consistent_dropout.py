"""Consistent dropout (Hausknecht & Wagener 2022, "Consistent Dropout for Policy Gradient Reinforcement
Learning", arXiv:2202.11818).

Ordinary dropout draws a fresh mask on every forward pass, so the action taken at rollout time and the
log-probability recomputed in the update come from different sub-networks: the PPO ratio pi_new / pi_old is
not 1 even before the first gradient step, and the policy gradient is biased. Consistent dropout samples the
mask once per rollout step, stores it with the transition (the policy declares it in its experience spec)
and passes the same mask to every later forward pass of that transition.

:class:`ConsistentDropout` is the layer: the mask is an argument. Masks are boolean keep-masks (True = keep);
kept units are scaled by 1 / (1 - p) (inverted dropout), so eval mode (no dropout) needs no rescaling.
"""

from __future__ import annotations

import torch
from torch import nn


class ConsistentDropout(nn.Module):
    """Dropout with probability ``p`` over a per-sample feature shape ``shape`` (e.g. (latents, dim)).

    ``forward(x, mask)``: in eval mode, or with p = 0, ``x`` unchanged; in training mode ``x * mask / (1 - p)``
    with the given (B, *shape) boolean mask, or a fresh one when ``mask`` is None (ordinary dropout).
    """

    def __init__(self, p: float, shape: tuple[int, ...]):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p, self.shape = p, tuple(shape)

    def sample_mask(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """A fresh (batch_size, *shape) boolean keep-mask, each unit kept with probability 1 - p."""
        return torch.rand((batch_size, *self.shape), device=device) >= self.p

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if mask is None:
            mask = self.sample_mask(x.shape[0], x.device)
        return x * mask.to(x.dtype) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}, shape={self.shape}"
