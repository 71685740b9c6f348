"""Multi-layer perceptrons with orthogonal initialisation (as in CleanRL / the PPO implementation details)."""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def layer_init(layer: nn.Linear, gain: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden_sizes: list[int], out_dim: int | None, activation: str = "tanh",
        out_gain: float = 1.0) -> nn.Sequential:
    """in_dim -> hidden_sizes (with activation) -> out_dim (linear, gain ``out_gain``); no head if out_dim None."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden_sizes:
        layers += [layer_init(nn.Linear(last, width)), ACTIVATIONS[activation]()]
        last = width
    if out_dim is not None:
        layers.append(layer_init(nn.Linear(last, out_dim), gain=out_gain))
    return nn.Sequential(*layers)


def flat_dim(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape))


def obs_to_float(obs: torch.Tensor) -> torch.Tensor:
    """(B, *obs_shape) -> (B, obs_dim) float32."""
    if obs.dim() == 2 and obs.dtype == torch.float32:  # already flat: skip two ops on the per-step path
        return obs
    return obs.reshape(obs.shape[0], -1).float()


__all__ = ["ACTIVATIONS", "layer_init", "mlp", "flat_dim", "obs_to_float", "torch"]
