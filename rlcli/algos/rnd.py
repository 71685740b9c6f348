"""PPO with Random Network Distillation (Burda et al. 2018), in the style of CleanRL's ppo_rnd_envpool.py.

RND is a :class:`~rlcli.algos.ppo.PPO` that overrides PPO's hooks where it differs: the env (clipped rewards),
the policy (two value heads), the rollout (novelty per step), the batch (two GAEs), the critic loss (both
heads) and an auxiliary loss (the predictor's). Epochs, minibatches, the clipped surrogate, gradient
clipping, learning-rate annealing and checkpoints are PPO's. Per iteration:

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
   random ``rnd.update_proportion`` (0.25) of its samples. Policy and predictor share one Adam (the predictor
   as a second parameter group) and one gradient-norm clip.

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

from rlcli.algos.ppo import PPO
from rlcli.config.schema import Config
from rlcli.engine.autoreset import reached_observations
from rlcli.engine.collector import torch_dtype
from rlcli.engine.gae import compute_gae
from rlcli.engine.normalization import DiscountedReturnFilter, RunningMeanStd
from rlcli.engine.timing import PhaseTimer
from rlcli.envs.registry import make_vec_env
from rlcli.nets.dual_value import DualValueActorCritic, make_dual_value_policy
from rlcli.nets.policies import TensorSpec, categorical_logprob_entropy
from rlcli.nets.rnd import RNDNetworks, rnd_view, rnd_view_shape
from rlcli.storage.checkpoint import Checkpoint


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


class RND(PPO):
    section = "rnd"

    def __init__(self, cfg: Config, device: torch.device):
        super().__init__(cfg, device)
        rp = cfg.rnd
        self.rnd = RNDNetworks(self.view_shape, rp.output_size, rp.hidden_sizes).to(device)
        self.optimizer.add_param_group({"params": list(self.rnd.predictor.parameters())})
        self.obs_rms = RunningMeanStd(self.view_shape, device)
        self.int_return_rms = RunningMeanStd((), device)
        self.int_return_filter = DiscountedReturnFilter(self.env.num_envs, rp.int_gamma, device)
        self.next_int_value: torch.Tensor | None = None  # V_int(observation after the rollout) (B,)
        self.rooms: set[int] = set()
        self.warmed_up = rp.warmup_steps == 0

    # -- building (PPO's hooks) ---------------------------------------------------------------------------
    def make_env(self):
        env = make_vec_env(self.cfg.env, self.cfg.run.seed)
        return ClipRewards(env) if self.cfg.rnd.clip_ext_rewards else env

    def make_policy(self) -> DualValueActorCritic:
        return make_dual_value_policy(self.cfg.policy, self.env.single_observation_space,
                                      self.env.single_action_space)

    @property
    def view_shape(self) -> tuple[int, ...]:
        """What RND looks at of an observation (the newest frame of image stacks)."""
        return rnd_view_shape(self.env.single_observation_space.shape)

    def experience_extras(self) -> dict[str, TensorSpec]:
        """Each step's reached observation as RND sees it, and its raw novelty."""
        return {"rnd_obs": TensorSpec(self.view_shape, torch_dtype(self.env.single_observation_space.dtype)),
                "int_rewards": TensorSpec(())}

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
                views.append(rnd_view(torch.as_tensor(reached_observations(next_obs, terminated | truncated, info))))
                if len(views) == self.hp.num_steps:
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
                reached = torch.as_tensor(reached_observations(next_obs.cpu().numpy(), done, info), device=self.device)
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

    # -- one iteration (PPO's hooks) ----------------------------------------------------------------------
    def collect(self, timer: PhaseTimer) -> tuple[list[float], list[int], torch.Tensor]:
        """PPO's rollout with :meth:`on_step` (after the warm-up, on the first call); also keeps V_int of the
        observation after the rollout in ``self.next_int_value``."""
        if not self.warmed_up:
            self.warm_up(timer)
        returns, lengths, next_value = self.collector.collect(timer, on_step=self.on_step(timer))
        with timer.phase("inference"), torch.no_grad():
            self.next_int_value = self.policy.heads(self.collector.next_obs)[2]
        return returns, lengths, next_value

    def learning_batch(self, next_value: torch.Tensor,
                       timer: PhaseTimer) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Normalised intrinsic rewards, the two GAEs and their combined advantages, the predictor's inputs."""
        hp, rp = self.hp, self.cfg.rnd
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
                                               self.next_int_value, rp.int_gamma, hp.gae_lambda)
            advantages = rp.ext_coef * ext_adv + rp.int_coef * int_adv
            batch = buf.flat({"advantages": advantages, "returns": ext_returns, "int_returns": int_returns})
            batch["rnd_input"] = rnd_input
        stats = {"ext_return": float(ext_returns.mean()), "int_return": float(int_returns.mean()),
                 "int_reward_mean": float(int_rewards.mean()), "int_reward_raw_mean": float(raw_int.mean())}
        if self.rooms:
            stats["rooms_visited"] = float(len(self.rooms))
        return batch, stats

    # -- the loss (PPO's hooks) ---------------------------------------------------------------------------
    def evaluate_minibatch(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """(log-prob, entropy, (extrinsic value, intrinsic value)), each (N,)."""
        logits, ext_value, int_value = self.policy.heads(mb["obs"])
        new_logprob, entropy = categorical_logprob_entropy(logits, mb["actions"])
        return new_logprob, entropy, (ext_value, int_value)

    def critic_loss(self, new_values: Any, mb: dict[str, torch.Tensor],
                    stats: dict[str, torch.Tensor]) -> torch.Tensor:
        """PPO's value loss of each head against its own targets, summed."""
        ext_value, int_value = new_values
        ext_loss = self.value_loss(ext_value, mb)
        int_loss = self.value_loss(int_value, {"values": mb["int_values"], "returns": mb["int_returns"]})
        stats.update(ext_value_loss=ext_loss.detach(), int_value_loss=int_loss.detach())
        return ext_loss + int_loss

    def auxiliary_loss(self, mb: dict[str, torch.Tensor], stats: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = self.predictor_loss(mb["rnd_input"])
        stats["predictor_loss"] = loss.detach()
        return loss

    # -- checkpoints --------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        tensors, documents = super().state()
        tensors["rnd"] = {"networks": self.rnd.state_dict(), "obs_rms": self.obs_rms.state(),
                          "int_return_rms": self.int_return_rms.state(),
                          "int_return_filter": self.int_return_filter.returns,
                          "rooms": torch.tensor(sorted(self.rooms), dtype=torch.int64)}
        documents["counters"]["warmed_up"] = self.warmed_up
        return tensors, documents

    def load_state(self, ckpt: Checkpoint, weights_only: bool = False) -> None:
        super().load_state(ckpt, weights_only)
        saved = ckpt.tensors("rnd")
        self.rnd.load_state_dict(saved["networks"])
        self.obs_rms.load_state(saved["obs_rms"])
        if weights_only:
            return
        self.int_return_rms.load_state(saved["int_return_rms"])
        self.int_return_filter.returns = torch.as_tensor(saved["int_return_filter"], dtype=torch.float64).to(
            self.device)
        self.rooms = {int(r) for r in np.asarray(saved.get("rooms", np.zeros(0)))}
        self.warmed_up = ckpt.documents["counters"]["warmed_up"]
