"""Actor-critic policies for discrete actions, and the policy registry (``policy.name``).

Every policy implements the same small interface, so PPO, VAPOR and RND never look inside it:

- ``experience_spec()``: extra per-step tensors the policy needs stored with each transition
  (name -> :class:`TensorSpec`), e.g. consistent-dropout masks. The rollout buffer allocates them.
- ``act(obs, deterministic)`` -> :class:`PolicyStep` (action, log-prob, value, extras matching the spec).
- ``evaluate(obs, actions, extras)`` -> (log-prob, entropy, value) of stored actions, reusing the extras.
- ``value(obs)`` -> state values, for bootstrapping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import torch
from torch import nn

from rlcli.config.fields import ConfigError, close_match
from rlcli.nets.mlp import flat_dim, mlp, obs_to_float


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]  # per-step shape, without the (T, B) leading dims
    dtype: torch.dtype = torch.float32


@dataclass
class PolicyStep:
    action: torch.Tensor  # (B,) int64
    logprob: torch.Tensor  # (B,)
    value: torch.Tensor  # (B,)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # per the experience spec, (B, *shape)


def categorical_sample(logits: torch.Tensor, deterministic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, A) logits -> (action (B,), log-prob (B,)). Faster than torch.distributions for small batches."""
    logp_all = torch.log_softmax(logits, dim=-1)
    if deterministic:
        action = logits.argmax(dim=-1)
    else:
        action = torch.multinomial(logp_all.exp(), 1).squeeze(-1)
    return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)


def categorical_logprob_entropy(logits: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logp_all = torch.log_softmax(logits, dim=-1)
    logprob = logp_all.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logprob, entropy


class ActorCritic(nn.Module):
    """Base class: subclasses implement ``forward(obs, extras) -> (logits (B, A), value (B,))``."""

    def experience_spec(self) -> dict[str, TensorSpec]:
        return {}

    def sample_extras(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Fresh per-step extras for a rollout step (e.g. new dropout masks); none by default."""
        return {}

    def forward(self, obs: torch.Tensor, extras: dict[str, torch.Tensor] | None = None):
        raise NotImplementedError

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> PolicyStep:
        extras = self.sample_extras(obs.shape[0]) if self.training else {}
        logits, value = self(obs, extras)
        action, logprob = categorical_sample(logits, deterministic)
        return PolicyStep(action, logprob, value, extras)

    def evaluate(self, obs: torch.Tensor, action: torch.Tensor,
                 extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, value = self(obs, extras)
        logprob, entropy = categorical_logprob_entropy(logits, action)
        return logprob, entropy, value

    def action_probs(self, obs: torch.Tensor, extras: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        logits, _ = self(obs, extras)
        return torch.softmax(logits, -1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self(obs, None)[1]


class MLPActorCritic(ActorCritic):
    """Separate actor and critic MLPs over the flattened observation (CleanRL's ``Agent``)."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, hidden_sizes: list[int], activation: str):
        super().__init__()
        d = flat_dim(obs_shape)
        self.actor = mlp(d, hidden_sizes, n_actions, activation, out_gain=0.01)
        self.critic = mlp(d, hidden_sizes, 1, activation, out_gain=1.0)

    def forward(self, obs, extras=None):
        x = obs_to_float(obs)
        return self.actor(x), self.critic(x).squeeze(-1)


PolicyFactory = Callable[[object, gym.Space, gym.Space], ActorCritic]


def _mlp_factory(policy_cfg, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    return MLPActorCritic(obs_space.shape, int(action_space.n), policy_cfg.hidden_sizes, policy_cfg.activation)


def _cnn_factory(policy_cfg, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    from rlcli.nets.cnn import cnn_policy_factory  # the module imports this one

    return cnn_policy_factory(policy_cfg, obs_space, action_space)


POLICIES: dict[str, PolicyFactory] = {"mlp": _mlp_factory, "cnn": _cnn_factory}


def register_policy(name: str, factory: PolicyFactory) -> None:
    POLICIES[name] = factory


def make_policy(policy_cfg, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    """Build ``policy_cfg.name`` for the env's single observation and action spaces."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ConfigError(f"policy '{policy_cfg.name}' needs a discrete action space, got {action_space}")
    if policy_cfg.name not in POLICIES:
        raise ConfigError(f"unknown policy '{policy_cfg.name}'{close_match(policy_cfg.name, list(POLICIES))}; "
                          f"choose one of {', '.join(sorted(POLICIES))}")
    return POLICIES[policy_cfg.name](policy_cfg, obs_space, action_space)
