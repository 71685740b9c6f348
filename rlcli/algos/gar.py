"""Gradient agreement across environment variations: GAR (the technique) and GAS (the diagnostic).

Given one loss per variation level, :func:`per_level_gradients` computes each level's gradient g_i
(flattened over all parameters). Then

- GAS = mean over pairs i < j of cos(g_i, g_j): 1 when every level pulls the same way, 0 when unrelated.
- GAR weighs each gradient by w_i = max(0, cos(g_i, mean_j g_j)) and uses sum_i w_i g_i as the update, so a
  level whose gradient disagrees with the consensus contributes nothing.

Learners call :func:`gar_step` (the combined gradient written into ``.grad``, GAS and the mean weight
returned) when the technique includes ``gar``, and :func:`gas_of_losses` for the diagnostic otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def per_level_gradients(losses: Sequence[torch.Tensor], params: Sequence[nn.Parameter]) -> torch.Tensor:
    """(L,) losses -> (L, P) gradients, P = number of parameter entries (unused parameters give zeros)."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=False, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                               for g, p in zip(grads, params, strict=True)]))
    return torch.stack(rows)


def gradient_agreement_score(grads: torch.Tensor) -> float:
    """GAS: mean pairwise cosine similarity of the rows of ``grads`` (L, P), L >= 2."""
    unit = grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = unit @ unit.T
    n = grads.shape[0]
    return float((cos.sum() - cos.diagonal().sum()) / (n * (n - 1)))


def agreement_weights(grads: torch.Tensor) -> torch.Tensor:
    """(L,) weights max(0, cos(g_i, mean g))."""
    mean = grads.mean(0)
    cos = (grads @ mean) / (grads.norm(dim=1) * mean.norm()).clamp_min(1e-12)
    return cos.clamp_min(0.0)


def write_gradient(flat: torch.Tensor, params: Sequence[nn.Parameter]) -> None:
    """Set each parameter's ``.grad`` from the flat (P,) vector."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def gar_step(losses: Sequence[torch.Tensor], params: Sequence[nn.Parameter]) -> dict[str, float]:
    """Write the GAR gradient sum_i max(0, cos(g_i, mean g)) g_i into ``params``' ``.grad``.

    Returns ``{"gas": ..., "gar_weight": mean weight}`` for logging. The caller clips and steps.
    """
    grads = per_level_gradients(losses, params)
    weights = agreement_weights(grads)
    write_gradient((weights[:, None] * grads).sum(0), params)
    return {"gas": gradient_agreement_score(grads), "gar_weight": float(weights.mean())}


def gas_of_losses(losses: Sequence[torch.Tensor], params: Sequence[nn.Parameter]) -> float:
    """GAS of per-level losses, leaving ``.grad`` untouched (the diagnostic when gar is off)."""
    return gradient_agreement_score(per_level_gradients(losses, params))


def uses_gar(cfg) -> bool:
    return "gar" in cfg.run.techniques


def training_levels(cfg) -> list[float]:
    """The variation levels a run trains on: gar's levels with gar, else the env's one level."""
    return list(cfg.gar.levels) if uses_gar(cfg) else [cfg.env.variation_level]
