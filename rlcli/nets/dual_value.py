"""Actor-critics with two value heads, extrinsic and intrinsic (for RND and other curiosity bonuses).

A :class:`DualValueActorCritic` is an ordinary :class:`ActorCritic` (``forward`` returns the logits and the
extrinsic value, so PPO can train it as is) that also predicts an intrinsic value. Its rollout steps carry
the intrinsic value as the experience-spec extra ``int_values``, which the rollout buffer stores with no
change to the collector.

``make_dual_value_policy`` builds one: CleanRL's MLP with a second value head (``mlp``), the RND paper's
CNN (``cnn``), or a registered policy that is one already (``vit-explorative``).
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from rlcli.config.fields import ConfigError
from rlcli.nets.cnn import nature_conv_dim, nature_convs
from rlcli.nets.mlp import flat_dim, layer_init, mlp, obs_to_float
from rlcli.nets.policies import ActorCritic, PolicyStep, TensorSpec, categorical_sample, make_policy


class DualValueActorCritic(ActorCritic):
    """Subclasses implement ``heads(obs) -> (logits (B, A), ext_value (B,), int_value (B,))``."""

    def heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def experience_spec(self) -> dict[str, TensorSpec]:
        return {"int_values": TensorSpec(())}

    def forward(self, obs, extras=None):
        logits, ext_value, _ = self.heads(obs)
        return logits, ext_value

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> PolicyStep:
        logits, ext_value, int_value = self.heads(obs)
        action, logprob = categorical_sample(logits, deterministic)
        return PolicyStep(action, logprob, ext_value, {"int_values": int_value})


class DualMLPActorCritic(DualValueActorCritic):
    """CleanRL's MLP ``Agent`` with a second (intrinsic) value head on the critic's torso."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, hidden_sizes: list[int], activation: str):
        super().__init__()
        d = flat_dim(obs_shape)
        self.actor = mlp(d, hidden_sizes, n_actions, activation, out_gain=0.01)
        self.critic = mlp(d, hidden_sizes, None, activation)
        self.critic_ext = layer_init(nn.Linear(hidden_sizes[-1], 1), gain=1.0)
        self.critic_int = layer_init(nn.Linear(hidden_sizes[-1], 1), gain=1.0)

    def heads(self, obs):
        x = obs_to_float(obs)
        hidden = self.critic(x)
        return self.actor(x), self.critic_ext(hidden).squeeze(-1), self.critic_int(hidden).squeeze(-1)


class RNDCNNActorCritic(DualValueActorCritic):
    """The RND paper's convolutional actor-critic, as in CleanRL's ppo_rnd_envpool.py: the Nature-DQN
    convolutions over (4, 84, 84) frames scaled to [0, 1], two dense layers (256, 448), an extra residual
    layer for the value heads, and a 448-unit actor layer."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int):
        super().__init__()
        feat = nature_conv_dim(obs_shape)
        self.network = nn.Sequential(nature_convs(obs_shape[0]), layer_init(nn.Linear(feat, 256)), nn.ReLU(),
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


def make_dual_value_policy(policy_cfg, obs_space: gym.Space, action_space: gym.Space) -> DualValueActorCritic:
    """The policy ``policy_cfg.name`` with an intrinsic value head: ``mlp`` becomes :class:`DualMLPActorCritic`,
    ``cnn`` :class:`RNDCNNActorCritic`, others must be dual-value policies already."""
    if policy_cfg.name in ("mlp", "cnn") and not isinstance(action_space, gym.spaces.Discrete):
        raise ConfigError(f"policy '{policy_cfg.name}' needs a discrete action space, got {action_space}")
    if policy_cfg.name == "cnn":
        return RNDCNNActorCritic(obs_space.shape, int(action_space.n))
    if policy_cfg.name == "mlp":
        return DualMLPActorCritic(obs_space.shape, int(action_space.n), policy_cfg.hidden_sizes,
                                  policy_cfg.activation)
    policy = make_policy(policy_cfg, obs_space, action_space)
    if not isinstance(policy, DualValueActorCritic):
        raise ConfigError(f"policy '{policy_cfg.name}' has no intrinsic value head; RND needs mlp, cnn or "
                          f"vit-explorative")
    return policy
