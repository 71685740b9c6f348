"""Proximal Policy Optimization (Schulman et al. 2017), in the style of CleanRL's ppo.py.

One iteration: collect ``ppo.num_steps`` x ``env.num_envs`` transitions, compute GAE, then run
``ppo.num_epochs`` passes of ``ppo.num_minibatches`` minibatches over them.

With the ``gar`` technique the rollout comes from ``env.num_envs`` envs at each of ``gar.levels`` and every
minibatch's gradient is the GAR combination of one gradient per level (rlcli.algos.gar). Without it, GAS is
measured every ``gar.gas_every`` iterations on a separate probe rollout from those levels.

Learners built on PPO override its hooks and nothing else (each hook's docstring says what it returns):

- building: :meth:`PPO.make_env`, :meth:`PPO.make_policy`, :meth:`PPO.make_optimizer`,
  :meth:`PPO.experience_extras` (more per-step tensors for the rollout buffer);
- an iteration: :meth:`PPO.collect` (the rollout), :meth:`PPO.learning_batch` (advantages and targets),
  :meth:`PPO.update` (epochs and minibatches);
- the loss of a minibatch: :meth:`PPO.evaluate_minibatch` (the policy's outputs), :meth:`PPO.policy_loss`,
  :meth:`PPO.critic_loss` / :meth:`PPO.value_loss`, :meth:`PPO.auxiliary_loss` (none for PPO).

VAPOR replaces :meth:`PPO.policy_loss`; RND the builders, the rollout, the batch and the critic and
auxiliary losses; A2C the optimizer, the losses and the update.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from rlcli.algos.gar import gar_step, gas_of_losses, uses_gar
from rlcli.algos.reg import backward_l2_penalty, reg_coefficient
from rlcli.config.learners import GARConfig
from rlcli.config.schema import Config
from rlcli.engine import distributed
from rlcli.engine.algorithm import Algorithm, IterationResult, load_rng_state, rng_state
from rlcli.engine.collector import RolloutCollector
from rlcli.engine.gae import compute_gae
from rlcli.engine.grad_clip import clip_grad_norm
from rlcli.engine.optim import FusedAdam
from rlcli.engine.rollout_buffer import RolloutBuffer
from rlcli.engine.seeding import PROBE_SEED_OFFSET
from rlcli.engine.timing import PhaseTimer
from rlcli.envs.registry import has_variation, make_vec_env
from rlcli.envs.variation import make_levels_env
from rlcli.nets.policies import ActorCritic, TensorSpec, make_policy
from rlcli.storage.checkpoint import Checkpoint, optimizer_from_tree, optimizer_to_tree


def make_optimizer(params, cfg: Config, learning_rate: float, eps: float) -> FusedAdam:
    """Adam, whatever the technique: ``reg`` is an L2 penalty in the loss (rlcli.algos.reg), not a decay."""
    # fused: one kernel for all parameters instead of a Python loop over them (much faster for small nets);
    # FusedAdam is torch's fused Adam without torch.optim, whose import of torch._dynamo costs ~1 s per run
    return FusedAdam(params, lr=learning_rate, eps=eps)


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var(target - predicted) / Var(target) of (N,) values: 1 when the values predict their targets
    exactly, 0 when they do no better than a constant; NaN when the targets are constant."""
    var_y = target.var()
    return float(1 - (target - predicted).var() / var_y) if var_y > 0 else float("nan")


class PPO(Algorithm):
    section = "ppo"
    hp_section = "ppo"  # the config section of the rollout and update hyperparameters (``self.hp``)

    def __init__(self, cfg: Config, device: torch.device):
        self.cfg, self.device = cfg, device
        self.hp = hp = cfg.sections[self.hp_section]
        self.gar_cfg: GARConfig | None = cfg.sections.get("gar")  # None: the learner has no gar section
        self.gar = uses_gar(cfg)
        self.env = self.make_env()
        self.policy = self.make_policy().to(device)
        self.optimizer = self.make_optimizer(self.policy.parameters())
        self.collector = RolloutCollector(self.env, self.policy, hp.num_steps, hp.gamma, device, cfg.run.seed,
                                          self.experience_extras())
        self.batch_size = hp.num_steps * self.env.num_envs
        self.probe: RolloutCollector | None = None  # GAS without gar: one env per level, rollouts not counted
        # GAS compares levels: on an env without variations (darkroom, atari, mario) they would be copies
        if (not self.gar and self.gar_cfg is not None and self.gar_cfg.gas_every
                and len(self.gar_cfg.levels) >= 2 and has_variation(cfg.env.id)):
            probe_env = make_levels_env(cfg.env, self.gar_cfg.levels, cfg.run.seed + PROBE_SEED_OFFSET, 1)
            self.probe = RolloutCollector(probe_env, self.policy, self.gar_cfg.gas_probe_steps, hp.gamma, device,
                                          cfg.run.seed + PROBE_SEED_OFFSET)
        self.reg_coef = reg_coefficient(cfg)  # 0 without the reg technique
        self.env_steps = 0
        self.iterations = 0

    # -- building (hooks) ---------------------------------------------------------------------------------
    def make_env(self):
        """The training vector env: ``env.num_envs`` envs, at every level of ``gar.levels`` with gar."""
        cfg = self.cfg
        return (make_levels_env(cfg.env, self.gar_cfg.levels, cfg.run.seed) if self.gar
                else make_vec_env(cfg.env, cfg.run.seed))

    def make_policy(self) -> ActorCritic:
        """The actor-critic ``policy.name`` for the env's spaces (on the CPU; the caller moves it)."""
        return make_policy(self.cfg.policy, self.env.single_observation_space, self.env.single_action_space)

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        return make_optimizer(params, self.cfg, self.hp.learning_rate, self.hp.adam_eps)

    def experience_extras(self) -> dict[str, TensorSpec]:
        """Per-step tensors the rollout buffer stores beyond the base spec and the policy's; none for PPO."""
        return {}

    def trained_parameters(self) -> list[nn.Parameter]:
        """Every parameter the optimizer steps, in its order: what the gradient-norm clip covers."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    # -- the loss -----------------------------------------------------------------------------------------
    def evaluate_minibatch(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """(log-prob (N,), entropy (N,), new values) of the minibatch's actions under the current policy; the
        new values are what :meth:`critic_loss` takes (PPO: the state values (N,))."""
        extras = {k: mb[k] for k in self.policy.experience_spec()}
        return self.policy.evaluate(mb["obs"], mb["actions"], extras)

    def policy_loss(self, new_logprob: torch.Tensor, entropy: torch.Tensor, mb: dict[str, torch.Tensor],
                    advantages: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Clipped surrogate objective minus the entropy bonus; (loss, stats to log)."""
        hp = self.hp
        log_ratio = new_logprob - mb["logprobs"]
        ratio = log_ratio.exp()
        pg_loss = torch.max(-advantages * ratio,
                            -advantages * torch.clamp(ratio, 1 - hp.clip_coef, 1 + hp.clip_coef)).mean()
        entropy_loss = entropy.mean()
        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean()
            clipfrac = ((ratio - 1.0).abs() > hp.clip_coef).float().mean()
        return pg_loss - hp.ent_coef * entropy_loss, {
            "policy_loss": pg_loss.detach(), "entropy": entropy_loss.detach(), "approx_kl": approx_kl,
            "clipfrac": clipfrac}

    def value_loss(self, new_value: torch.Tensor, mb: dict[str, torch.Tensor]) -> torch.Tensor:
        """Half the squared error of ``new_value`` (N,) against ``mb["returns"]``, clipped around the rollout's
        ``mb["values"]`` with ``ppo.clip_vloss``."""
        hp = self.hp
        if hp.clip_vloss:
            unclipped = (new_value - mb["returns"]) ** 2
            clipped_value = mb["values"] + torch.clamp(new_value - mb["values"], -hp.clip_coef, hp.clip_coef)
            clipped = (clipped_value - mb["returns"]) ** 2
            return 0.5 * torch.max(unclipped, clipped).mean()
        return 0.5 * ((new_value - mb["returns"]) ** 2).mean()

    def critic_loss(self, new_values: Any, mb: dict[str, torch.Tensor],
                    stats: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss of every value head (weighted by ``vf_coef`` in the total); logs it into ``stats``."""
        v_loss = self.value_loss(new_values, mb)
        stats["value_loss"] = v_loss.detach()
        return v_loss

    def auxiliary_loss(self, mb: dict[str, torch.Tensor], stats: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """A further loss added to the total as it is (RND: its predictor's); None for PPO."""
        return None

    def minibatch_loss(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        new_logprob, entropy, new_values = self.evaluate_minibatch(mb)
        advantages = mb["advantages"]
        if self.hp.norm_adv and advantages.numel() > 1:
            advantages = distributed.normalize_advantages(advantages)  # over all ranks' rows under torchrun
        pi_loss, stats = self.policy_loss(new_logprob, entropy, mb, advantages)
        loss = pi_loss + self.hp.vf_coef * self.critic_loss(new_values, mb, stats)
        extra = self.auxiliary_loss(mb, stats)
        return (loss if extra is None else loss + extra), stats

    # -- one iteration ------------------------------------------------------------------------------------
    def set_learning_rate(self) -> float:
        hp = self.hp
        lr = hp.learning_rate
        if hp.anneal_lr:
            lr *= max(0.0, 1.0 - self.env_steps / self.cfg.run.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def iteration(self, timer: PhaseTimer) -> IterationResult:
        lr = self.set_learning_rate()
        returns, lengths, next_value = self.collect(timer)
        self.env_steps += self.batch_size * distributed.world_size()  # all ranks' steps under torchrun
        self.iterations += 1
        batch, stats = self.learning_batch(next_value, timer)
        with timer.phase("learning"):
            stats.update(self.update(batch))
            stats["explained_variance"] = explained_variance(batch["values"], batch["returns"])
        if self.probe is not None and self.iterations % self.gar_cfg.gas_every == 0:
            stats["gas"] = self.probe_gas(timer)
        stats["learning_rate"] = lr
        return IterationResult(stats, returns, lengths)

    def collect(self, timer: PhaseTimer) -> tuple[list[float], list[int], torch.Tensor]:
        """One rollout into ``self.collector.buffer``: (finished episodes' returns, their lengths,
        V(observation after the rollout) (B,))."""
        return self.collector.collect(timer)

    def gae_batch(self, buffer: RolloutBuffer, next_value: torch.Tensor) -> dict[str, torch.Tensor]:
        """``buffer`` flattened to (T * B) rows, with GAE ``advantages`` and value targets ``returns``."""
        advantages, value_targets = compute_gae(buffer["rewards"], buffer["values"], buffer["dones"], next_value,
                                                self.hp.gamma, self.hp.gae_lambda)
        return buffer.flat({"advantages": advantages, "returns": value_targets})

    def learning_batch(self, next_value: torch.Tensor,
                       timer: PhaseTimer) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """(the flat batch :meth:`update` learns from, stats of the rollout to log). The batch's ``values``
        and ``returns`` give the logged explained variance."""
        with timer.phase("learning"):
            return self.gae_batch(self.collector.buffer, next_value), {}

    def level_batches(self, batch: dict[str, torch.Tensor], idx: torch.Tensor, env) -> list[dict[str, torch.Tensor]]:
        """Split the rows ``idx`` of a flat (T * B) batch of ``env`` by variation level (empty levels dropped)."""
        group = torch.as_tensor(env.group_of(np.arange(env.num_envs)), device=self.device)[idx % env.num_envs]
        out = []
        for g in range(len(env.levels)):
            rows = idx[group == g]
            if rows.numel():
                out.append({k: v[rows] for k, v in batch.items()})
        return out

    def probe_gas(self, timer: PhaseTimer) -> float:
        """GAS of the loss on a fresh probe rollout at each of ``gar.levels`` (no parameter change)."""
        _, _, next_value = self.probe.collect(timer)
        with timer.phase("learning"):
            buf = self.probe.buffer
            batch = self.gae_batch(buf, next_value)
            rows = torch.arange(buf.num_steps * buf.num_envs, device=self.device)
            losses = [self.minibatch_loss(mb)[0] for mb in self.level_batches(batch, rows, self.probe.env)]
            return gas_of_losses(losses, list(self.policy.parameters()))

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """``num_epochs`` passes of ``num_minibatches`` shuffled minibatches, one clipped gradient step each;
        the mean of each logged stat over the steps."""
        hp = self.hp
        minibatch_size = max(1, self.batch_size // hp.num_minibatches)
        sums: dict[str, torch.Tensor | float] = {}
        count = 0
        for _ in range(hp.num_epochs):
            perm = torch.randperm(self.batch_size, device=self.device)
            # one gather per epoch, minibatches are views (gar instead splits each minibatch by level)
            shuffled = None if self.gar else {k: v[perm] for k, v in batch.items()}
            for start in range(0, self.batch_size, minibatch_size):
                self.optimizer.zero_grad(set_to_none=True)
                if self.gar:
                    idx = perm[start:start + minibatch_size]
                    per_level = [self.minibatch_loss(mb) for mb in self.level_batches(batch, idx, self.env)]
                    stats = {k: sum(s[k] for _, s in per_level) / len(per_level) for k in per_level[0][1]}
                    if len(per_level) >= 2:
                        stats.update(gar_step([loss for loss, _ in per_level], list(self.policy.parameters())))
                    else:  # a tiny minibatch drew from one level only: its gradient is the update
                        per_level[0][0].backward()
                else:
                    mb = {k: v[start:start + minibatch_size] for k, v in shuffled.items()}
                    loss, stats = self.minibatch_loss(mb)
                    loss.backward()
                if self.reg_coef:
                    stats["reg_penalty"] = backward_l2_penalty(self.policy.parameters(), self.reg_coef)
                distributed.average_gradients(self.trained_parameters())  # torchrun: the global minibatch's gradient
                clip_grad_norm(self.trained_parameters(), hp.max_grad_norm)
                self.optimizer.step()
                for k, v in stats.items():  # tensors: one .item() per stat at the end, not per minibatch
                    v = v.detach() if isinstance(v, torch.Tensor) else v
                    sums[k] = sums[k] + v if k in sums else v
                count += 1
        return {k: float(v) / count for k, v in sums.items()}

    # -- evaluation and checkpoints -----------------------------------------------------------------------
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        self.policy.eval()
        try:
            with torch.no_grad():
                step = self.policy.act(torch.as_tensor(obs, device=self.device), deterministic=deterministic)
        finally:
            self.policy.train()
        return step.action.cpu().numpy()

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        opt_state, opt_groups = optimizer_to_tree(self.optimizer)
        tensors = {"model": self.policy.state_dict(), "optimizer": opt_state, "rng": rng_state(),
                   "collector": self.collector.state()}
        if self.probe is not None:
            tensors["gas_probe"] = self.probe.state()
        return tensors, {"optimizer_param_groups": opt_groups,
                         "counters": {"env_steps": self.env_steps, "iterations": self.iterations}}

    def load_state(self, ckpt: Checkpoint, weights_only: bool = False) -> None:
        self.policy.load_state_dict(ckpt.tensors("model"))
        if weights_only:
            return
        if ckpt.has("optimizer"):
            optimizer_from_tree(self.optimizer, ckpt.tensors("optimizer"), ckpt.documents["optimizer_param_groups"])
        counters = ckpt.documents["counters"]
        self.env_steps, self.iterations = counters["env_steps"], counters["iterations"]
        self.collector.load_state(ckpt.tensors("collector"), reseed=self.cfg.run.seed + self.env_steps)
        if self.probe is not None and ckpt.has("gas_probe"):
            self.probe.load_state(ckpt.tensors("gas_probe"), reseed=self.cfg.run.seed + PROBE_SEED_OFFSET)
        load_rng_state(ckpt.tensors("rng"))

    def close(self) -> None:
        self.env.close()
        if self.probe is not None:
            self.probe.env.close()
