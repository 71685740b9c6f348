"""``--policy cnn``: the RND paper's convolutional actor-critic with extrinsic and intrinsic value heads.

As in CleanRL's ppo_rnd_envpool.py: the Nature-DQN convolutions over (4, 84, 84) frames scaled to [0, 1],
two dense layers (256, 448), an extra residual layer for the value heads, and a 448-unit actor layer.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from rlcli.config.fields import ConfigError
from rlcli.nets.dual_value import DualValueActorCritic
from rlcli.nets.mlp import layer_init


class RNDCNNActorCritic(DualValueActorCritic):
    def __init__(self, obs_shape: tuple[int, ...], n_actions: int):
        super().__init__()
        convs = nn.Sequential(
            layer_init(nn.Conv2d(obs_shape[0], 32, 8, stride=4)), nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
            nn.Flatten())
        with torch.no_grad():
            feat = convs(torch.zeros(1, *obs_shape)).shape[1]
        self.network = nn.Sequential(convs, layer_init(nn.Linear(feat, 256)), nn.ReLU(),
                                     layer_init(nn.Linear(256, 448)), nn.ReLU())
        self.extra_layer = nn.Sequential(layer_init(nn.Linear(448, 448), gain=0.1), nn.ReLU())
        self.actor = nn.Sequential(layer_init(nn.Linear(448, 448), gain=0.01), nn.ReLU(),
                                   layer_init(nn.Linear(448, n_actions), gain=0.01))
        self.critic_ext = layer_init(nn.Linear(448, 1), gain=0.01)
        self.critic_int = layer_init(nn.Linear(448, 1), gain=0.01)

    def heads(self, obs):
        hidden = self.network(obs.float() / 255.0)
        features = self.extra_layer(hidden) + hidden
        return (self.actor(hidden), self.critic_ext(features).squeeze(-1),
                self.critic_int(features).squeeze(-1))


def make_rnd_cnn(policy_cfg, obs_space: gym.Space, action_space: gym.Space) -> RNDCNNActorCritic:
    if len(obs_space.shape) != 3:
        raise ConfigError(f"policy 'cnn' needs image observations (C, H, W), got shape {obs_space.shape}")
    return RNDCNNActorCritic(obs_space.shape, int(action_space.n))

