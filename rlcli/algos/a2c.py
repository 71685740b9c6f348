"""Advantage Actor-Critic, synchronous (A2C; Mnih et al. 2016), in the style of Stable-Baselines3's A2C.

A2C is PPO without the trust region: one iteration collects ``a2c.num_steps`` x ``env.num_envs``
transitions with PPO's rollout collector (the same actor-critic policies, ``policy.name``), computes
advantages with GAE (``a2c.gae_lambda`` = 1.0 gives the paper's n-step returns; truncated episodes are
bootstrapped by the collector), then takes exactly one gradient step on the whole rollout. Per rollout of
N transitions (A = advantage, R = A + V_old the value target, H = policy entropy)::

    loss = -mean(A * log pi(a|s)) - a2c.ent_coef * mean(H) + a2c.vf_coef * mean((V(s) - R)^2)

RMSprop (the paper's optimizer; ``a2c.optimizer = "adam"`` for Adam), the gradient's global norm clipped
to ``a2c.max_grad_norm``. A2C subclasses :class:`~rlcli.algos.ppo.PPO` and overrides the optimizer, the
two losses and the update; rollouts, GAE, learning-rate annealing, evaluation and checkpoints are PPO's.
Departures from SB3: its RMSprop is TensorFlow's, sqrt(v + 1e-5) in the denominator; this one is torch's,
sqrt(v) + eps, with eps = ``a2c.optimizer_eps`` = 3e-3 giving about the same floor (with torch's usual 1e-5
the steps grow large once gradients get small, and CartPole policies fell from 500 to ~150-190 on 2 of 3
seeds). The techniques (gar, reg) are refused, as for RND.
"""

from __future__ import annotations

import torch

from rlcli.algos.ppo import PPO
from rlcli.engine.grad_clip import clip_grad_norm


class A2C(PPO):
    section = "a2c"
    hp_section = "a2c"

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        hp = self.hp
        if hp.optimizer == "adam":
            return torch.optim.Adam(params, lr=hp.learning_rate, eps=hp.optimizer_eps)
        return torch.optim.RMSprop(params, lr=hp.learning_rate, alpha=hp.rmsprop_alpha, eps=hp.optimizer_eps)

    def policy_loss(self, new_logprob: torch.Tensor, entropy: torch.Tensor, mb: dict[str, torch.Tensor],
                    advantages: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The policy gradient's surrogate -mean(A log pi) minus the entropy bonus; (loss, stats to log)."""
        pg_loss = -(advantages.detach() * new_logprob).mean()
        entropy_loss = entropy.mean()
        return pg_loss - self.hp.ent_coef * entropy_loss, {"policy_loss": pg_loss.detach(),
                                                           "entropy": entropy_loss.detach()}

    def value_loss(self, new_value: torch.Tensor, mb: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared error of the values (N,) against their targets (SB3's, without PPO's 1/2 or clip)."""
        return ((new_value - mb["returns"]) ** 2).mean()

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One gradient step on the whole rollout (no epochs, no minibatches)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss, stats = self.minibatch_loss(batch)
        loss.backward()
        clip_grad_norm(self.trained_parameters(), self.hp.max_grad_norm)
        self.optimizer.step()
        return {k: float(v) for k, v in stats.items()}
