"""Random Network Distillation's networks (Burda et al. 2018): a fixed random target and a trained predictor.

Both map a normalised observation to an ``output_size`` embedding; the predictor's squared error is the
novelty of the observation. For images (C, H, W) both use the Nature-DQN convolutions with LeakyReLU (the
RND paper's torso), the predictor with two more dense layers; for vectors, MLPs of ``hidden_sizes`` (the
predictor one layer deeper).
"""

from __future__ import annotations

import torch
from torch import nn

from rlcli.nets.cnn import nature_conv_dim, nature_convs
from rlcli.nets.mlp import flat_dim, layer_init


def _mlp(in_dim: int, hidden_sizes: list[int], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    last = in_dim
    for width in hidden_sizes:
        layers += [layer_init(nn.Linear(last, width)), nn.ReLU()]
        last = width
    layers.append(layer_init(nn.Linear(last, out_dim)))
    return nn.Sequential(*layers)


class RNDNetworks(nn.Module):
    """``forward(x) -> (predicted (N, output_size), target (N, output_size))``; x: normalised float obs."""

    def __init__(self, obs_shape: tuple[int, ...], output_size: int = 512, hidden_sizes: list[int] = (64, 64)):
        super().__init__()
        if len(obs_shape) == 3:
            feat = nature_conv_dim(obs_shape)
            self.target = nn.Sequential(nature_convs(obs_shape[0], nn.LeakyReLU),
                                        layer_init(nn.Linear(feat, output_size)))
            self.predictor = nn.Sequential(
                nature_convs(obs_shape[0], nn.LeakyReLU),
                layer_init(nn.Linear(feat, 512)), nn.ReLU(),
                layer_init(nn.Linear(512, 512)), nn.ReLU(),
                layer_init(nn.Linear(512, output_size)))
        else:
            d = flat_dim(obs_shape)
            hidden = list(hidden_sizes)
            self.target = _mlp(d, hidden, output_size)
            self.predictor = _mlp(d, hidden + hidden[-1:], output_size)
        for p in self.target.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            target = self.target(x)
        return self.predictor(x), target

    @torch.no_grad()
    def novelty(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) raw intrinsic reward: half the squared distance between predicted and target embeddings."""
        predicted, target = self(x)
        return (predicted - target).pow(2).sum(-1) / 2


def rnd_view_shape(obs_shape: tuple[int, ...]) -> tuple[int, ...]:
    """What RND looks at: the newest frame (1, H, W) of a stacked image observation, else the whole obs."""
    return (1, *obs_shape[1:]) if len(obs_shape) == 3 else tuple(obs_shape)


def rnd_view(obs: torch.Tensor) -> torch.Tensor:
    """(B, *obs_shape) -> (B, *rnd_view_shape): the newest frame of image stacks."""
    return obs[:, -1:] if obs.dim() == 4 else obs


