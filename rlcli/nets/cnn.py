"""Convolutional networks for image observations: the Nature-DQN encoder, a CNN actor-critic (policy ``cnn``)
and the Q-network of DQN (MLP or CNN torso, picked by ``policy.name``).

Image observations are uint8 (C, H, W) (Procgen's 4 stacked RGB frames: C = 12, H = W = 64) and are scaled
to [0, 1] inside the network.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from rlcli.config.fields import ConfigError
from rlcli.nets.mlp import flat_dim, layer_init, mlp
from rlcli.nets.policies import ActorCritic


class NatureCNN(nn.Module):
    """(B, C, H, W) uint8 or float -> (B, out_dim): 8x8/4, 4x4/2, 3x3/1 convolutions and one linear layer."""

    def __init__(self, obs_shape: tuple[int, ...], out_dim: int = 256):
        super().__init__()
        if len(obs_shape) != 3:
            raise ConfigError(f"the cnn policy needs (C, H, W) image observations, got shape {obs_shape}")
        c, h, w = obs_shape
        self.convs = nn.Sequential(
            layer_init(nn.Conv2d(c, 32, 8, stride=4)), nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            n = self.convs(torch.zeros(1, c, h, w)).shape[1]
        self.fc = nn.Sequential(layer_init(nn.Linear(n, out_dim)), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
        return self.fc(self.convs(x))


class CNNActorCritic(ActorCritic):
    """A shared Nature-CNN torso with linear actor and critic heads (CleanRL's Atari PPO agent)."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, hidden: int = 256):
        super().__init__()
        self.torso = NatureCNN(obs_shape, hidden)
        self.actor = layer_init(nn.Linear(hidden, n_actions), gain=0.01)
        self.critic = layer_init(nn.Linear(hidden, 1), gain=1.0)

    def forward(self, obs, extras=None):
        h = self.torso(obs)
        return self.actor(h), self.critic(h).squeeze(-1)


def cnn_policy_factory(policy_cfg, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    hidden = policy_cfg.hidden_sizes[-1] if policy_cfg.hidden_sizes else 256
    return CNNActorCritic(obs_space.shape, int(action_space.n), hidden)


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
