"""PPO with Random Network Distillation (Burda et al. 2018), in the style of CleanRL's ppo_rnd_envpool.py.

Per iteration:

1. Roll out ``ppo.num_steps`` x ``env.num_envs`` steps with PPO's :class:`RolloutCollector`. The policy has
   two value heads (its steps carry ``int_values``); the collector's ``on_step`` hook stores each step's next
   observation as RND sees it (the newest frame of image stacks) and its raw novelty
   ``|predictor(x) - target(x)|^2 / 2`` of the normalised observation ``x``.
2. RND statistics: the observation normaliser (running mean/std per element; normalised values clipped to
   +-``rnd.obs_clip``; initialised by ``rnd.warmup_steps`` random-action steps per env) absorbs the batch,
   and intrinsic rewards are divided by the running std of their discounted per-env sums.
3. Two GAEs: extrinsic (episodic, ``ppo.gamma`` = 0.999) and intrinsic (non-episodic: no episode end stops
   it; ``rnd.int_gamma`` = 0.99). Advantages are combined as ``ext_coef * A_ext + int_coef * A_int`` (2, 1).
4. PPO's epochs over the batch; each minibatch's loss adds both value losses and the predictor's MSE on a
   random ``rnd.update_proportion`` (0.25) of its samples. Policy and predictor share one Adam.

Extrinsic rewards are clipped to [-1, 1] for learning (``rnd.clip_ext_rewards``), so the training
``episode_return`` counts clipped rewards; evaluation returns are the raw game scores. With
``rnd.life_loss_ends_ext`` a lost life ends the extrinsic value's episode while the game goes on.

Logged: ``ext_return`` / ``int_return`` (mean extrinsic / intrinsic value targets of the batch, i.e. the
discounted returns the value heads learn), ``int_reward_mean`` (normalised intrinsic reward per step),
``int_reward_raw_mean``, ``ext_value_loss``, ``int_value_loss``, ``predictor_loss`` and, where the env
reports rooms (Montezuma's Revenge), ``rooms_visited`` (distinct rooms seen since training began).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlcli.algos.ppo import PPO, make_optimizer
from rlcli.config.schema import Config
from rlcli.engine import distributed
from rlcli.engine.algorithm import IterationResult, load_rng_state, rng_state
from rlcli.engine.collector import RolloutCollector, torch_dtype
from rlcli.engine.gae import compute_gae
from rlcli.engine.grad_clip import clip_grad_norm
from rlcli.engine.normalization import DiscountedReturnFilter, RunningMeanStd
from rlcli.engine.timing import PhaseTimer
from rlcli.envs.registry import make_vec_env
from rlcli.nets.dual_value import make_dual_value_policy
from rlcli.nets.policies import TensorSpec, categorical_logprob_entropy
from rlcli.nets.rnd import RNDNetworks, rnd_view, rnd_view_shape
from rlcli.storage.checkpoint import Checkpoint, optimizer_from_tree, optimizer_to_tree


class ClipRewards(gym.vector.VectorWrapper):
    """Extrinsic rewards clipped to [-1, 1] (their sign for Atari's integer rewards); exact env state
    save/restore (``get_state``/``set_state``) passes through where the env has it."""

    def __init__(self, env: gym.vector.VectorEnv):
        super().__init__(env)
        if hasattr(env, "get_state"):
            self.get_state, self.set_state = env.get_state, env.set_state

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return obs, np.clip(reward, -1.0, 1.0), terminated, truncated, info


def final_observations(next_obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """The observations each env actually reached: ``info["final_obs"]`` where an episode just ended."""
    if not done.any():
        return next_obs
    out = np.array(next_obs, copy=True)
    for i in np.flatnonzero(done):
        out[i] = info["final_obs"][i]
    return out


class RND(PPO):
    section = "rnd"

    def __init__(self, cfg: Config, device: torch.device):
        self.cfg, self.device = cfg, device
        hp, rp = cfg.ppo, cfg.rnd
        env = make_vec_env(cfg.env, cfg.run.seed)
        self.env = ClipRewards(env) if rp.clip_ext_rewards else env
        obs_space = self.env.single_observation_space
        self.policy = make_dual_value_policy(cfg.policy, obs_space, self.env.single_action_space).to(device)
        self.view_shape = rnd_view_shape(obs_space.shape)
        self.rnd = RNDNetworks(self.view_shape, rp.output_size, rp.hidden_sizes).to(device)
        self.optimizer = make_optimizer(list(self.policy.parameters()) + list(self.rnd.predictor.parameters()),
                                        cfg, hp.learning_rate, hp.adam_eps)
        extra_spec = {"rnd_obs": TensorSpec(self.view_shape, torch_dtype(obs_space.dtype)),
                      "int_rewards": TensorSpec(())}
        self.collector = RolloutCollector(self.env, self.policy, hp.num_steps, hp.gamma, device, cfg.run.seed,
                                          extra_spec)
        self.batch_size = hp.num_steps * self.env.num_envs
        self.minibatch_size = max(1, self.batch_size // hp.num_minibatches)
        self.obs_rms = RunningMeanStd(self.view_shape, device)
        self.int_return_rms = RunningMeanStd((), device)
        self.int_return_filter = DiscountedReturnFilter(self.env.num_envs, rp.int_gamma, device)
        self.rooms: set[int] = set()
        self.warmed_up = rp.warmup_steps == 0
        self.gar, self.probe = False, None  # PPO's gar technique and GAS probe are not used with RND
        self.env_steps = 0
        self.iterations = 0

    # -- RND pieces ---------------------------------------------------------------------------------------
    def normalized_view(self, obs: torch.Tensor) -> torch.Tensor:
        return self.obs_rms.normalize(obs, self.cfg.rnd.obs_clip)

    def intrinsic_reward(self, view: torch.Tensor) -> torch.Tensor:
        """(N, *view_shape) raw observations -> (N,) raw novelty under the current normaliser."""
        return self.rnd.novelty(self.normalized_view(view))

    def warm_up(self, timer: PhaseTimer) -> None:
        """Initialise the observation normaliser from ``rnd.warmup_steps`` random-action steps per env."""
        rng = np.random.default_rng(self.cfg.run.seed)
        n_actions = int(self.env.single_action_space.n)
        views = []
        with timer.phase("env"):
            for _ in range(self.cfg.rnd.warmup_steps):
                actions = rng.integers(0, n_actions, self.env.num_envs)
                next_obs, _, terminated, truncated, info = self.env.step(actions)
                views.append(rnd_view(torch.as_tensor(final_observations(next_obs, terminated | truncated, info))))
                if len(views) == self.cfg.ppo.num_steps:
                    self.obs_rms.update(torch.cat(views).to(self.device))
                    views = []
        if views:
            self.obs_rms.update(torch.cat(views).to(self.device))
        c = self.collector  # training continues from where the random steps left the envs
        c.next_obs = torch.as_tensor(next_obs, device=self.device)
        c.episode_return[:] = 0.0
        c.episode_length[:] = 0
        self.warmed_up = True

    def on_step(self, timer: PhaseTimer):
        """The collector's per-step hook: store RND's view of the reached observations and their novelty."""

        def hook(row: dict[str, torch.Tensor], step, next_obs: torch.Tensor, info: dict) -> None:
            with timer.phase("rnd"):
                done = row["dones"].cpu().numpy() > 0
                reached = torch.as_tensor(final_observations(next_obs.cpu().numpy(), done, info), device=self.device)
                view = rnd_view(reached)
                row["rnd_obs"] = view
                row["int_rewards"] = self.intrinsic_reward(view)
                if self.cfg.rnd.life_loss_ends_ext and "life_loss" in info:
                    life_loss = torch.as_tensor(np.asarray(info["life_loss"], dtype=np.float32), device=self.device)
                    row["dones"] = torch.maximum(row["dones"], life_loss)
                if "room" in info:
                    rooms = np.asarray(info["room"])[np.asarray(info.get("_room", np.ones(len(done), bool)))]
                    self.rooms.update(int(r) for r in rooms)
        return hook

    def predictor_loss(self, rnd_input: torch.Tensor) -> torch.Tensor:
        """MSE of the predictor on a random ``rnd.update_proportion`` of the (N, *view) normalised inputs."""
        predicted, target = self.rnd(rnd_input)
        per_sample = (predicted - target).pow(2).mean(-1)
        mask = (torch.rand(per_sample.shape[0], device=self.device) < self.cfg.rnd.update_proportion).float()
        return (per_sample * mask).sum() / mask.sum().clamp_min(1.0)

    def normalize_intrinsic(self, raw: torch.Tensor) -> torch.Tensor:
        """(T, B) raw novelties -> divided by the running std of their discounted per-env sums."""
        sums = torch.stack([self.int_return_filter.update(raw[t]) for t in range(raw.shape[0])])
        self.int_return_rms.update(sums.reshape(-1))
        return (raw / self.int_return_rms.var.sqrt().clamp_min(1e-8)).float()

    # -- one iteration ------------------------------------------------------------------------------------
    def iteration(self, timer: PhaseTimer) -> IterationResult:
        hp, rp = self.cfg.ppo, self.cfg.rnd
        if not self.warmed_up:
            self.warm_up(timer)
        lr = self.set_learning_rate()
        returns, lengths, next_value = self.collector.collect(timer, on_step=self.on_step(timer))
        with timer.phase("inference"), torch.no_grad():
            next_int_value = self.policy.heads(self.collector.next_obs)[2]
        self.env_steps += self.batch_size * distributed.world_size()  # all ranks' steps under torchrun
        self.iterations += 1
        buf = self.collector.buffer
        with timer.phase("rnd"):
            raw_int = buf["int_rewards"].clone()
            int_rewards = self.normalize_intrinsic(raw_int)
            self.obs_rms.update(buf["rnd_obs"].reshape(-1, *self.view_shape))
            rnd_input = self.normalized_view(buf["rnd_obs"].reshape(-1, *self.view_shape))
        with timer.phase("learning"):
            ext_adv, ext_returns = compute_gae(buf["rewards"], buf["values"], buf["dones"], next_value,
                                               hp.gamma, hp.gae_lambda)
            int_adv, int_returns = compute_gae(int_rewards, buf["int_values"], torch.zeros_like(int_rewards),
                                               next_int_value, rp.int_gamma, hp.gae_lambda)
            advantages = rp.ext_coef * ext_adv + rp.int_coef * int_adv
            batch = buf.flat({"advantages": advantages, "returns": ext_returns, "int_returns": int_returns})
            batch["rnd_input"] = rnd_input
            stats = self.update(batch)
            var_y = ext_returns.var()
            stats["explained_variance"] = (float(1 - (ext_returns - buf["values"]).var() / var_y)
                                           if var_y > 0 else float("nan"))
        stats.update(learning_rate=lr, ext_return=float(ext_returns.mean()), int_return=float(int_returns.mean()),
                     int_reward_mean=float(int_rewards.mean()), int_reward_raw_mean=float(raw_int.mean()))
        if self.rooms:
            stats["rooms_visited"] = float(len(self.rooms))
        return IterationResult(stats, returns, lengths)

    def minibatch_loss(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hp = self.cfg.ppo
        logits, ext_value, int_value = self.policy.heads(mb["obs"])
        new_logprob, entropy = categorical_logprob_entropy(logits, mb["actions"])
        advantages = mb["advantages"]
        if hp.norm_adv and advantages.numel() > 1:
            advantages = distributed.normalize_advantages(advantages)  # over all ranks' rows under torchrun
        pi_loss, stats = self.policy_loss(new_logprob, entropy, mb, advantages)
        ext_loss = self.value_loss(ext_value, mb)
        int_loss = self.value_loss(int_value, {"values": mb["int_values"], "returns": mb["int_returns"]})
        predictor_loss = self.predictor_loss(mb["rnd_input"])
        stats.update(ext_value_loss=ext_loss.detach(), int_value_loss=int_loss.detach(),
                     predictor_loss=predictor_loss.detach())
        return pi_loss + hp.vf_coef * (ext_loss + int_loss) + predictor_loss, stats

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """PPO's epochs and minibatches; the gradient clip covers the policy and the predictor together."""
        hp = self.cfg.ppo
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        sums: dict[str, float] = {}
        count = 0
        for _ in range(hp.num_epochs):
            perm = torch.randperm(self.batch_size, device=self.device)
            for start in range(0, self.batch_size, self.minibatch_size):
                idx = perm[start:start + self.minibatch_size]
                loss, stats = self.minibatch_loss({k: v[idx] for k, v in batch.items()})
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                distributed.average_gradients(params)  # torchrun: the global minibatch's gradient
                clip_grad_norm(params, hp.max_grad_norm)
                self.optimizer.step()
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                count += 1
        return {k: v / count for k, v in sums.items()}

    # -- checkpoints --------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        opt_state, opt_groups = optimizer_to_tree(self.optimizer)
        rnd_state = {"networks": self.rnd.state_dict(), "obs_rms": self.obs_rms.state(),
                     "int_return_rms": self.int_return_rms.state(),
                     "int_return_filter": self.int_return_filter.returns,
                     "rooms": torch.tensor(sorted(self.rooms), dtype=torch.int64)}
        tensors = {"model": self.policy.state_dict(), "optimizer": opt_state, "rng": rng_state(),
                   "collector": self.collector.state(), "rnd": rnd_state}
        return tensors, {"optimizer_param_groups": opt_groups,
                         "counters": {"env_steps": self.env_steps, "iterations": self.iterations,
                                      "warmed_up": self.warmed_up}}

    def load_state(self, ckpt: Checkpoint, weights_only: bool = False) -> None:
        self.policy.load_state_dict(ckpt.tensors("model"))
        saved = ckpt.tensors("rnd")
        self.rnd.load_state_dict(saved["networks"])
        self.obs_rms.load_state(saved["obs_rms"])
        if weights_only:
            return
        self.int_return_rms.load_state(saved["int_return_rms"])
        self.int_return_filter.returns = torch.as_tensor(saved["int_return_filter"], dtype=torch.float64).to(
            self.device)
        self.rooms = {int(r) for r in np.asarray(saved.get("rooms", np.zeros(0)))}
        optimizer_from_tree(self.optimizer, ckpt.tensors("optimizer"), ckpt.documents["optimizer_param_groups"])
        counters = ckpt.documents["counters"]
        self.env_steps, self.iterations = counters["env_steps"], counters["iterations"]
        self.warmed_up = counters["warmed_up"]
        self.collector.load_state(ckpt.tensors("collector"), reseed=self.cfg.run.seed + self.env_steps)
        load_rng_state(ckpt.tensors("rng"))
