"""Gradient-norm clipping, as ``torch.nn.utils.clip_grad_norm_`` computes it, with less overhead.

torch's version groups the gradients by device and dtype and checks options in Python on every call;
for a small network that costs more than the arithmetic (~100 us of ~1.3 ms per PPO minibatch on CartPole).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def clip_grad_norm(params: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients of ``params`` in place so their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping (a 0-dim tensor). Same result as torch's ``clip_grad_norm_``: every
    gradient is multiplied by min(1, max_norm / (norm + 1e-6)). All gradients must share one device.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total_norm + 1e-6)).clamp_(max=1.0))
    return total_norm
