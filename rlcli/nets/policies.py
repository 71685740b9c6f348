"""Actor-critic policies for discrete actions, and :func:`make_policy` (``policy.name``, registered in
``rlcli/nets/__init__.py``).

Every policy implements the same small interface, so PPO, VAPOR and RND never look inside it:

- ``experience_spec()``: extra per-step tensors the policy needs stored with each transition
  (name -> :class:`TensorSpec`), e.g. consistent-dropout masks. The rollout buffer allocates them.
- ``act(obs, deterministic)`` -> :class:`PolicyStep` (action, log-prob, value, extras matching the spec).
- ``evaluate(obs, actions, extras)`` -> (log-prob, entropy, value) of stored actions, reusing the extras.
- ``value(obs)`` -> state values, for bootstrapping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import torch
from torch import nn

from rlcli.config.fields import ConfigError
from rlcli.nets.cnn import NatureCNN
from rlcli.nets.mlp import flat_dim, layer_init, obs_to_float


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
    """(B, A) logits -> (action (B,), log-prob (B,)). Faster than torch.distributions for small batches.

    Sampling uses the Gumbel-max trick, argmax(log p + G) with G = -log(E), E ~ Exp(1): an exact sample of
    the categorical distribution, and about half the cost of torch.multinomial for a handful of envs.
    """
    logp_all = torch.log_softmax(logits, dim=-1)
    if deterministic:
        action = logits.argmax(dim=-1)
    else:
        action = (logp_all - torch.empty_like(logp_all).exponential_().log()).argmax(dim=-1)
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
    """Separate actor and critic MLPs of the same hidden widths over the flattened observation (CleanRL's
    ``Agent``), evaluated together.

    The two networks' weights are stacked on a leading dim of 2 (0 = actor, 1 = critic), so each layer is
    one batched matmul (``torch.baddbmm``) instead of two ``nn.Linear`` calls: the same function and the
    same gradients as two separate MLPs, with half the ops and module calls, which dominate the cost of
    small networks on a CPU. The output layer is (hidden, n_actions) for both; the critic uses column 0
    only, so its other columns get no gradient and never change.
    """

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, hidden_sizes: list[int], activation: str):
        super().__init__()
        widths = [flat_dim(obs_shape), *hidden_sizes, n_actions]
        self.activation = {"tanh": torch.tanh, "relu": torch.relu}[activation]
        # parameters w{i} (2, in_i, out_i) and b{i} (2, 1, out_i); forward reads them straight from
        # self._parameters, as iterating an nn.ParameterList costs more than the matmuls at this size
        self.layer_names = [(f"w{i}", f"b{i}") for i in range(len(widths) - 1)]
        last = len(widths) - 2
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            weight = torch.zeros(2, n_in, n_out)
            for net, gain in ((0, 0.01 if i == last else math.sqrt(2)), (1, 1.0 if i == last else math.sqrt(2))):
                used_out = 1 if (net == 1 and i == last) else n_out
                w = torch.empty(used_out, n_in)  # nn.Linear's (out, in) layout, orthogonal as in CleanRL
                nn.init.orthogonal_(w, gain)
                weight[net, :, :used_out] = w.T
            self.register_parameter(f"w{i}", nn.Parameter(weight))
            self.register_parameter(f"b{i}", nn.Parameter(torch.zeros(2, 1, n_out)))

    def forward(self, obs, extras=None):
        x = obs_to_float(obs)  # (B, obs_dim)
        h = x.expand(2, -1, -1)  # (2, B, obs_dim): the same input to actor and critic, no copy
        params = self._parameters
        for w_name, b_name in self.layer_names[:-1]:
            h = self.activation(torch.baddbmm(params[b_name], h, params[w_name]))
        w_name, b_name = self.layer_names[-1]
        h = torch.baddbmm(params[b_name], h, params[w_name])
        return h[0], h[1, :, 0]  # logits (B, A), value (B,)


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


PolicyFactory = Callable[[object, gym.Space, gym.Space], ActorCritic]


def mlp_policy(policy_cfg, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    return MLPActorCritic(obs_space.shape, int(action_space.n), policy_cfg.hidden_sizes, policy_cfg.activation)


def cnn_policy(policy_cfg, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    hidden = policy_cfg.hidden_sizes[-1] if policy_cfg.hidden_sizes else 256
    return CNNActorCritic(obs_space.shape, int(action_space.n), hidden)


def make_policy(policy_cfg, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    """Build ``policy_cfg.name`` (registered in ``rlcli/nets/__init__.py``) for the env's single spaces."""
    from rlcli.registry import policy_spec
    from rlcli.specs import load_target

    spec = policy_spec(policy_cfg.name)
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ConfigError(f"policy '{policy_cfg.name}' needs a discrete action space, got {action_space}")
    factory: PolicyFactory = load_target(spec.target)
    return factory(policy_cfg, obs_space, action_space)
