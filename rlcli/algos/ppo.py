"""Proximal Policy Optimization (Schulman et al. 2017), in the style of CleanRL's ppo.py.

One iteration: collect ``ppo.num_steps`` x ``env.num_envs`` transitions, compute GAE, then run
``ppo.num_epochs`` passes of ``ppo.num_minibatches`` minibatches over them. The policy loss is pluggable:
:meth:`PPO.policy_loss` is the clipped surrogate; VAPOR subclasses PPO and replaces only that method.

With the ``gar`` technique the rollout comes from ``env.num_envs`` envs at each of ``gar.levels`` and every
minibatch's gradient is the GAR combination of one gradient per level (rlcli.algos.gar). Without it, GAS is
measured every ``gar.gas_every`` iterations on a separate probe rollout from those levels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

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
from rlcli.engine.timing import PhaseTimer
from rlcli.envs.registry import has_variation, make_vec_env
from rlcli.envs.variation import make_levels_env
from rlcli.nets.policies import make_policy
from rlcli.storage.checkpoint import Checkpoint, optimizer_from_tree, optimizer_to_tree

PROBE_SEED_OFFSET = 50_000  # GAS probe envs never share seeds with training or evaluation envs


def make_optimizer(params, cfg: Config, learning_rate: float, eps: float) -> FusedAdam:
    """Adam, whatever the technique: ``reg`` is an L2 penalty in the loss (rlcli.algos.reg), not a decay."""
    # fused: one kernel for all parameters instead of a Python loop over them (much faster for small nets);
    # FusedAdam is torch's fused Adam without torch.optim, whose import of torch._dynamo costs ~1 s per run
    return FusedAdam(params, lr=learning_rate, eps=eps)


class PPO(Algorithm):
    section = "ppo"

    def __init__(self, cfg: Config, device: torch.device):
        self.cfg, self.device = cfg, device
        hp = cfg.ppo
        self.gar_cfg: GARConfig = cfg.sections.get("gar") or GARConfig()
        self.gar = uses_gar(cfg)
        self.env = (make_levels_env(cfg.env, self.gar_cfg.levels, cfg.run.seed) if self.gar
                    else make_vec_env(cfg.env, cfg.run.seed))
        self.policy = make_policy(cfg.policy, self.env.single_observation_space,
                                  self.env.single_action_space).to(device)
        self.optimizer = make_optimizer(self.policy.parameters(), cfg, hp.learning_rate, hp.adam_eps)
        self.collector = RolloutCollector(self.env, self.policy, hp.num_steps, hp.gamma, device, cfg.run.seed)
        self.batch_size = hp.num_steps * self.env.num_envs
        self.minibatch_size = max(1, self.batch_size // hp.num_minibatches)
        self.probe: RolloutCollector | None = None  # GAS without gar: one env per level, rollouts not counted
        # GAS compares levels: on an env without variations (darkroom, atari, mario) they would be copies
        if not self.gar and self.gar_cfg.gas_every and len(self.gar_cfg.levels) >= 2 and has_variation(cfg.env.id):
            probe_env = make_levels_env(cfg.env, self.gar_cfg.levels, cfg.run.seed + PROBE_SEED_OFFSET, 1)
            self.probe = RolloutCollector(probe_env, self.policy, self.gar_cfg.gas_probe_steps, hp.gamma, device,
                                          cfg.run.seed + PROBE_SEED_OFFSET)
        self.reg_coef = reg_coefficient(cfg)  # 0 without the reg technique
        self.env_steps = 0
        self.iterations = 0

    # -- the loss -----------------------------------------------------------------------------------------
    def policy_loss(self, new_logprob: torch.Tensor, entropy: torch.Tensor, mb: dict[str, torch.Tensor],
                    advantages: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Clipped surrogate objective minus the entropy bonus; (loss, stats to log)."""
        hp = self.cfg.ppo
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
        hp = self.cfg.ppo
        if hp.clip_vloss:
            unclipped = (new_value - mb["returns"]) ** 2
            clipped_value = mb["values"] + torch.clamp(new_value - mb["values"], -hp.clip_coef, hp.clip_coef)
            clipped = (clipped_value - mb["returns"]) ** 2
            return 0.5 * torch.max(unclipped, clipped).mean()
        return 0.5 * ((new_value - mb["returns"]) ** 2).mean()

    def minibatch_loss(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        extras = {k: mb[k] for k in self.policy.experience_spec()}
        new_logprob, entropy, new_value = self.policy.evaluate(mb["obs"], mb["actions"], extras)
        advantages = mb["advantages"]
        if self.cfg.ppo.norm_adv and advantages.numel() > 1:
            advantages = distributed.normalize_advantages(advantages)  # over all ranks' rows under torchrun
        pi_loss, stats = self.policy_loss(new_logprob, entropy, mb, advantages)
        v_loss = self.value_loss(new_value, mb)
        stats["value_loss"] = v_loss.detach()
        return pi_loss + self.cfg.ppo.vf_coef * v_loss, stats

    # -- one iteration ------------------------------------------------------------------------------------
    def set_learning_rate(self) -> float:
        hp = self.cfg.ppo
        lr = hp.learning_rate
        if hp.anneal_lr:
            lr *= max(0.0, 1.0 - self.env_steps / self.cfg.run.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def iteration(self, timer: PhaseTimer) -> IterationResult:
        hp = self.cfg.ppo
        lr = self.set_learning_rate()
        returns, lengths, next_value = self.collector.collect(timer)
        self.env_steps += self.batch_size * distributed.world_size()  # all ranks' steps under torchrun
        self.iterations += 1
        with timer.phase("learning"):
            buf = self.collector.buffer
            advantages, value_targets = compute_gae(buf["rewards"], buf["values"], buf["dones"], next_value,
                                                    hp.gamma, hp.gae_lambda)
            batch = buf.flat({"advantages": advantages, "returns": value_targets})
            stats = self.update(batch)
            y_pred, y_true = batch["values"], batch["returns"]
            var_y = y_true.var()
            stats["explained_variance"] = float(1 - (y_true - y_pred).var() / var_y) if var_y > 0 else float("nan")
        if self.probe is not None and self.iterations % self.gar_cfg.gas_every == 0:
            stats["gas"] = self.probe_gas(timer)
        stats["learning_rate"] = lr
        return IterationResult(stats, returns, lengths)

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
        """GAS of the PPO loss on a fresh probe rollout at each of ``gar.levels`` (no parameter change)."""
        hp = self.cfg.ppo
        _, _, next_value = self.probe.collect(timer)
        with timer.phase("learning"):
            buf = self.probe.buffer
            advantages, value_targets = compute_gae(buf["rewards"], buf["values"], buf["dones"], next_value,
                                                    hp.gamma, hp.gae_lambda)
            batch = buf.flat({"advantages": advantages, "returns": value_targets})
            rows = torch.arange(buf.num_steps * buf.num_envs, device=self.device)
            losses = [self.minibatch_loss(mb)[0] for mb in self.level_batches(batch, rows, self.probe.env)]
            return gas_of_losses(losses, list(self.policy.parameters()))

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        hp = self.cfg.ppo
        sums: dict[str, torch.Tensor | float] = {}
        count = 0
        for _ in range(hp.num_epochs):
            perm = torch.randperm(self.batch_size, device=self.device)
            # one gather per epoch, minibatches are views (gar instead splits each minibatch by level)
            shuffled = None if self.gar else {k: v[perm] for k, v in batch.items()}
            for start in range(0, self.batch_size, self.minibatch_size):
                self.optimizer.zero_grad(set_to_none=True)
                if self.gar:
                    idx = perm[start:start + self.minibatch_size]
                    per_level = [self.minibatch_loss(mb) for mb in self.level_batches(batch, idx, self.env)]
                    stats = {k: sum(s[k] for _, s in per_level) / len(per_level) for k in per_level[0][1]}
                    if len(per_level) >= 2:
                        stats.update(gar_step([loss for loss, _ in per_level], list(self.policy.parameters())))
                    else:  # a tiny minibatch drew from one level only: its gradient is the update
                        per_level[0][0].backward()
                else:
                    mb = {k: v[start:start + self.minibatch_size] for k, v in shuffled.items()}
                    loss, stats = self.minibatch_loss(mb)
                    loss.backward()
                if self.reg_coef:
                    stats["reg_penalty"] = backward_l2_penalty(self.policy.parameters(), self.reg_coef)
                distributed.average_gradients(self.policy.parameters())  # torchrun: the global minibatch's gradient
                clip_grad_norm(self.policy.parameters(), hp.max_grad_norm)
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
