"""The Nature-DQN convolutional stack (Mnih et al. 2015), the one CNN every image network of rlcli builds on,
and the Q-network of DQN (MLP or CNN torso, picked by ``policy.name``).

Users: :class:`NatureCNN` (the ``cnn`` actor-critic of rlcli.nets.policies and DQN's CNN Q-network), the RND
paper's dual-value actor-critic (rlcli.nets.dual_value) and RND's target and predictor (rlcli.nets.rnd, with
LeakyReLU). Image observations are uint8 (C, H, W) (Atari's 4 stacked frames: (4, 84, 84); Procgen's 4
stacked RGB frames: (12, 64, 64)).
"""

from __future__ import annotations

import torch
from torch import nn

from rlcli.config.fields import ConfigError
from rlcli.nets.mlp import flat_dim, layer_init, mlp


def nature_convs(in_channels: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """(B, C, H, W) float -> (B, :func:`nature_conv_dim`): 8x8/4, 4x4/2, 3x3/1 convolutions of 32, 64 and 64
    channels, each followed by ``activation``, then flattened. Orthogonal init with gain sqrt(2)."""
    return nn.Sequential(
        layer_init(nn.Conv2d(in_channels, 32, 8, stride=4)), activation(),
        layer_init(nn.Conv2d(32, 64, 4, stride=2)), activation(),
        layer_init(nn.Conv2d(64, 64, 3, stride=1)), activation(),
        nn.Flatten())


def nature_conv_dim(obs_shape: tuple[int, ...]) -> int:
    """Width of :func:`nature_convs`' output for (C, H, W) inputs (3136 for 84 x 84 frames), computed from
    the kernel sizes and strides rather than by running the stack."""
    if len(obs_shape) != 3:
        raise ConfigError(f"policy 'cnn' needs (C, H, W) image observations, got shape {tuple(obs_shape)}")
    sides = []
    for side in obs_shape[1:]:
        for kernel, stride in ((8, 4), (4, 2), (3, 1)):
            side = (side - kernel) // stride + 1
        if side < 1:
            raise ConfigError(f"images of shape {tuple(obs_shape)} are too small for the Nature CNN (36 x 36 at least)")
        sides.append(side)
    return 64 * sides[0] * sides[1]


class NatureCNN(nn.Module):
    """(B, C, H, W) uint8 or float -> (B, out_dim): :func:`nature_convs` and one ReLU linear layer; uint8
    images are scaled to [0, 1] first."""

    def __init__(self, obs_shape: tuple[int, ...], out_dim: int = 256):
        super().__init__()
        n = nature_conv_dim(obs_shape)
        self.convs = nature_convs(obs_shape[0])
        self.fc = nn.Sequential(layer_init(nn.Linear(n, out_dim)), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
        return self.fc(self.convs(x))


class QNetwork(nn.Module):
    """obs (B, *obs_shape) -> Q-values (B, A); a CNN torso for ``policy.name = "cnn"``, an MLP otherwise."""

    def __init__(self, policy_cfg, obs_shape: tuple[int, ...], n_actions: int):
        super().__init__()
        if policy_cfg.name == "cnn":
            hidden = policy_cfg.hidden_sizes[-1] if policy_cfg.hidden_sizes else 256
            self.net = nn.Sequential(NatureCNN(obs_shape, hidden), layer_init(nn.Linear(hidden, n_actions)))
            self.flatten = False
        elif policy_cfg.name == "mlp":
            self.net = mlp(flat_dim(obs_shape), policy_cfg.hidden_sizes, n_actions, policy_cfg.activation)
            self.flatten = True
        else:
            raise ConfigError(f"dqn supports policy.name mlp or cnn, got '{policy_cfg.name}'")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.reshape(obs.shape[0], -1).float() if self.flatten else obs)
