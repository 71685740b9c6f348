"""Deep Q-Network (Mnih et al. 2015), in the style of CleanRL's dqn.py, with double DQN and n-step returns.

Each vector step: act epsilon-greedily (epsilon decays linearly from ``dqn.start_epsilon`` to
``dqn.end_epsilon`` over the first ``dqn.exploration_fraction`` of ``run.total_steps``, then stays there),
store the transition in the replay buffer, and every ``dqn.train_frequency`` vector steps (after
``dqn.learning_starts`` env steps) take ``dqn.gradient_steps`` Huber-loss gradient steps on sampled batches.
The target network follows the online one every ``dqn.target_update_every`` env steps (rate ``dqn.tau``).
Observations are normalised by running statistics (uint8 images are scaled to [0, 1] by the network).

With the ``gar`` technique the envs run at every level of ``gar.levels``, each gradient step samples one
batch per level and the update is their GAR combination (rlcli.algos.gar). Without gar, GAS is measured
every ``gar.gas_every`` iterations on fresh probe transitions from those levels.

Resume. A checkpoint holds the networks, optimizer, counters, RNGs, normalisation statistics, and (with
``dqn.checkpoint_replay``, the default) the replay buffer and the envs' state, so N steps then a resume to 2N
equal 2N in one go bit for bit. The buffer's size in a checkpoint: its written rows of obs, actions (int64),
rewards (float32) and two flags, plus next observations only at episode ends (the rest are the next row's
obs): about (obs bytes + 14) x transitions. Measured with presets/dqn-cartpole.toml after its 50k steps:
last.h5 is 1.85 MB with the buffer, 0.32 MB without (a full 100k-transition buffer adds about 3 MB); with
presets/dqn-starpilot.toml (12x64x64 uint8 frames) it would be about 5 GB. Envs whose state cannot be saved (MiniGrid's
gymnasium envs, Procgen's Starpilot, Atari, Mario) start fresh episodes on resume, seeded with
``run.seed + env_steps``; their resume is exact in everything but the envs. With ``checkpoint_replay = false``
the buffer is not saved: a resumed run refills ``dqn.learning_starts`` transitions before it learns again,
and its result differs from an uninterrupted run's.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlcli.algos.gar import gar_step, gas_of_losses, uses_gar
from rlcli.algos.ppo import make_optimizer
from rlcli.algos.reg import backward_l2_penalty, reg_coefficient
from rlcli.config.fields import ConfigError
from rlcli.config.schema import Config
from rlcli.engine.algorithm import Algorithm, IterationResult, load_rng_state, rng_state
from rlcli.engine.autoreset import reached_observations
from rlcli.engine.grad_clip import clip_grad_norm
from rlcli.engine.normalization import RunningMeanStd
from rlcli.engine.replay_buffer import ReplayBuffer
from rlcli.engine.seeding import PROBE_SEED_OFFSET
from rlcli.engine.timing import PhaseTimer
from rlcli.envs.registry import has_variation, make_vec_env
from rlcli.envs.variation import make_levels_env
from rlcli.nets.cnn import QNetwork
from rlcli.storage.checkpoint import Checkpoint, optimizer_from_tree, optimizer_to_tree


def _rng_to_array(rng: np.random.Generator) -> np.ndarray:
    return np.frombuffer(json.dumps(rng.bit_generator.state).encode(), dtype=np.uint8)


def _rng_from_array(saved: Any) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(bytes(np.asarray(saved, dtype=np.uint8)).decode())
    return rng


OBS_CLIP = 10.0  # normalised observations are clipped to +-this (as in SB3's VecNormalize)


class DQN(Algorithm):
    section = "dqn"

    def __init__(self, cfg: Config, device: torch.device):
        self.cfg, self.device = cfg, device
        hp = cfg.dqn
        self.gar_cfg = cfg.gar
        self.gar = uses_gar(cfg)
        seed = cfg.run.seed
        self.env = make_levels_env(cfg.env, self.gar_cfg.levels, seed) if self.gar else make_vec_env(cfg.env, seed)
        obs_space, act_space = self.env.single_observation_space, self.env.single_action_space
        if not hasattr(act_space, "n"):
            raise ConfigError(f"dqn needs a discrete action space, got {act_space}")
        if not hasattr(obs_space, "low"):  # darkroom's Discrete position: the Q-network reads arrays of features
            self.env.close()
            raise ConfigError(f"dqn needs a Box observation space, and '{cfg.env.id}' gives {obs_space}; "
                              "train ppo or es on it")
        self.n_actions = int(act_space.n)
        self.q = QNetwork(cfg.policy, obs_space.shape, self.n_actions).to(device)
        self.target = copy.deepcopy(self.q)
        self.optimizer = make_optimizer(self.q.parameters(), cfg, hp.learning_rate, hp.adam_eps)
        self.reg_coef = reg_coefficient(cfg)  # 0 without the reg technique
        self.num_envs = self.env.num_envs
        self.buffer = ReplayBuffer(max(1, hp.buffer_size // self.num_envs), self.num_envs, obs_space.shape,
                                   obs_space.dtype, device)
        # observation normalisation: uint8 images are scaled by the network; bounded boxes (MiniGrid's one-hot
        # view) are mapped to [0, 1] by their bounds; unbounded ones (CartPole) use running mean and std
        self.obs_rms: RunningMeanStd | None = None
        self.obs_affine: tuple[torch.Tensor, torch.Tensor] | None = None
        if hp.normalize_obs and obs_space.dtype != np.uint8:
            low, high = np.asarray(obs_space.low, np.float64), np.asarray(obs_space.high, np.float64)
            if np.all(np.isfinite(low) & np.isfinite(high)) and np.all(high - low < 1e3):
                self.obs_affine = (torch.as_tensor(low, dtype=torch.float32, device=device),
                                   torch.as_tensor(np.maximum(high - low, 1e-8), dtype=torch.float32, device=device))
            else:
                self.obs_rms = RunningMeanStd(obs_space.shape, device=device)
        self.rng = np.random.default_rng(seed)
        obs, _ = self.env.reset(seed=seed)
        self.obs = obs
        if self.obs_rms is not None:
            self.obs_rms.update(torch.as_tensor(obs, device=device))
        self.probe_env = None
        # GAS compares levels: on an env without variations (darkroom, atari, mario) they would be copies
        if not self.gar and self.gar_cfg.gas_every and len(self.gar_cfg.levels) >= 2 and has_variation(cfg.env.id):
            self.probe_env = make_levels_env(cfg.env, self.gar_cfg.levels, seed + PROBE_SEED_OFFSET, 1)
            self.probe_obs = self.probe_env.reset(seed=seed + PROBE_SEED_OFFSET)[0]
        self.episode_return = np.zeros(self.num_envs)
        self.episode_length = np.zeros(self.num_envs, dtype=np.int64)
        self.env_steps = 0
        self.vector_steps = 0
        self.updates = 0
        self.iterations = 0
        self.next_target_update = hp.target_update_every
        self.learning_after = hp.learning_starts  # env steps; moved on when a resume starts with an empty buffer

    # -- acting -------------------------------------------------------------------------------------------
    def epsilon(self) -> float:
        hp = self.cfg.dqn
        decay_steps = hp.exploration_fraction * self.cfg.run.total_steps
        frac = min(1.0, self.env_steps / decay_steps) if decay_steps > 0 else 1.0
        return hp.start_epsilon + frac * (hp.end_epsilon - hp.start_epsilon)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        if self.obs_rms is not None:
            return self.obs_rms.normalize(obs, clip=OBS_CLIP)
        if self.obs_affine is not None:
            return (obs.float() - self.obs_affine[0]) / self.obs_affine[1]
        return obs

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            q = self.q(self.normalize(torch.as_tensor(obs, device=self.device)))
        return q.argmax(1).cpu().numpy()

    def explore(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        actions = self.greedy(obs)
        random = self.rng.random(len(actions)) < epsilon
        actions[random] = self.rng.integers(0, self.n_actions, size=int(random.sum()))
        return actions

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.greedy(obs) if deterministic else self.explore(obs, self.cfg.dqn.end_epsilon)

    # -- learning -----------------------------------------------------------------------------------------
    def td_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Huber loss between Q(s, a) and the n-step (double) DQN target."""
        obs, next_obs = self.normalize(batch["obs"]), self.normalize(batch["next_obs"])
        with torch.no_grad():
            next_q_target = self.target(next_obs)
            if self.cfg.dqn.double_dqn:
                next_action = self.q(next_obs).argmax(1, keepdim=True)
                next_value = next_q_target.gather(1, next_action).squeeze(1)
            else:
                next_value = next_q_target.max(1).values
            target = batch["returns"] + batch["discounts"] * next_value
        q = self.q(obs).gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
        return F.smooth_l1_loss(q, target)

    def sample(self, envs: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        hp = self.cfg.dqn
        return self.buffer.sample(hp.batch_size, self.rng, hp.n_step, hp.gamma, envs)

    def gradient_step(self) -> dict[str, float]:
        hp = self.cfg.dqn
        params = list(self.q.parameters())
        self.optimizer.zero_grad(set_to_none=True)
        if self.gar:
            groups = self.env.group_of(np.arange(self.num_envs))
            losses = [self.td_loss(self.sample(np.flatnonzero(groups == g))) for g in range(len(self.env.levels))]
            stats = gar_step(losses, params)
            stats["td_loss"] = float(sum(loss.detach() for loss in losses) / len(losses))
        else:
            loss = self.td_loss(self.sample())
            loss.backward()
            stats = {"td_loss": float(loss.detach())}
        if self.reg_coef:  # with gar+reg after the GAR combination: the penalty is no level's loss
            stats["reg_penalty"] = float(backward_l2_penalty(params, self.reg_coef))
        clip_grad_norm(params, hp.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        return stats

    def update_target(self) -> None:
        tau = self.cfg.dqn.tau
        with torch.no_grad():
            for t, p in zip(self.target.parameters(), self.q.parameters(), strict=True):
                t.mul_(1.0 - tau).add_(p, alpha=tau)

    def probe_gas(self, timer: PhaseTimer) -> float:
        """GAS of the TD loss on ``gar.gas_probe_steps`` fresh transitions per level (epsilon-greedy)."""
        hp = self.cfg.dqn
        steps = self.gar_cfg.gas_probe_steps
        env = self.probe_env
        probe = ReplayBuffer(steps, env.num_envs, env.single_observation_space.shape,
                             env.single_observation_space.dtype, self.device)
        eps = self.epsilon()
        for _ in range(steps):
            with timer.phase("inference"):
                actions = self.explore(self.probe_obs, eps)
            with timer.phase("env"):
                next_obs, reward, terminated, truncated, info = env.step(actions)
            probe.add(self.probe_obs, actions, reward, reached_observations(next_obs, terminated | truncated, info),
                      terminated, truncated)
            self.probe_obs = next_obs
        with timer.phase("learning"):
            n = probe.capacity - hp.n_step + 1
            losses = []
            for level in range(len(env.levels)):
                batch = probe.sample(n, np.random.default_rng(level), hp.n_step, hp.gamma, np.array([level]))
                losses.append(self.td_loss(batch))
            return gas_of_losses(losses, list(self.q.parameters()))

    # -- one iteration ------------------------------------------------------------------------------------
    def iteration(self, timer: PhaseTimer) -> IterationResult:
        hp = self.cfg.dqn
        returns: list[float] = []
        lengths: list[int] = []
        sums: dict[str, float] = {}
        count = 0
        target_steps = self.env_steps + hp.steps_per_iteration
        while self.env_steps < target_steps:
            eps = self.epsilon()
            with timer.phase("inference"):
                actions = self.explore(self.obs, eps)
            with timer.phase("env"):
                next_obs, reward, terminated, truncated, info = self.env.step(actions)
            done = terminated | truncated
            with timer.phase("storage"):
                self.buffer.add(self.obs, actions, reward, reached_observations(next_obs, done, info), terminated, truncated)
            if self.obs_rms is not None:
                self.obs_rms.update(torch.as_tensor(next_obs, device=self.device))
            self.episode_return += reward
            self.episode_length += 1
            for i in np.flatnonzero(done):
                returns.append(float(self.episode_return[i]))
                lengths.append(int(self.episode_length[i]))
            self.episode_return[done] = 0.0
            self.episode_length[done] = 0
            self.obs = next_obs
            self.env_steps += self.num_envs
            self.vector_steps += 1
            if (self.env_steps > self.learning_after and self.vector_steps % hp.train_frequency == 0
                    and self.buffer.can_sample(hp.n_step)):
                with timer.phase("learning"):
                    for _ in range(hp.gradient_steps):
                        for k, v in self.gradient_step().items():
                            sums[k] = sums.get(k, 0.0) + v
                        count += 1
            if self.env_steps >= self.next_target_update:
                self.update_target()
                self.next_target_update += hp.target_update_every
        self.iterations += 1
        stats = {k: v / count for k, v in sums.items()} if count else {}
        stats["epsilon"] = self.epsilon()
        if self.probe_env is not None and self.updates and self.iterations % self.gar_cfg.gas_every == 0:
            stats["gas"] = self.probe_gas(timer)
        return IterationResult(stats, returns, lengths)

    # -- checkpoints --------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Weights, optimizer, counters, RNGs, normalisation statistics, and with ``dqn.checkpoint_replay`` the
        replay buffer and the envs' state (where the envs can save theirs)."""
        opt_state, opt_groups = optimizer_to_tree(self.optimizer)
        tensors: dict[str, Any] = {"model": self.q.state_dict(), "target": self.target.state_dict(),
                                   "optimizer": opt_state, "rng": {**rng_state(), "numpy": _rng_to_array(self.rng)}}
        if self.obs_rms is not None:
            tensors["obs_rms"] = self.obs_rms.state()
        if self.cfg.dqn.checkpoint_replay:
            tensors["replay"] = self.buffer.state()
            if hasattr(self.env, "get_state"):
                tensors["envs"] = {"env": self.env.get_state(), "obs": self.obs,
                                   "episode_return": self.episode_return, "episode_length": self.episode_length}
            if self.probe_env is not None and hasattr(self.probe_env, "get_state"):
                tensors["probe_envs"] = {"env": self.probe_env.get_state(), "obs": self.probe_obs}
        counters = {"env_steps": self.env_steps, "vector_steps": self.vector_steps, "updates": self.updates,
                    "iterations": self.iterations, "next_target_update": self.next_target_update,
                    "learning_after": self.learning_after}
        return tensors, {"optimizer_param_groups": opt_groups, "counters": counters}

    def load_state(self, ckpt: Checkpoint, weights_only: bool = False) -> None:
        self.q.load_state_dict(ckpt.tensors("model"))
        if self.obs_rms is not None and ckpt.has("obs_rms"):
            self.obs_rms.load_state(ckpt.tensors("obs_rms"))
        if weights_only:
            return
        self.target.load_state_dict(ckpt.tensors("target"))
        optimizer_from_tree(self.optimizer, ckpt.tensors("optimizer"), ckpt.documents["optimizer_param_groups"])
        c = ckpt.documents["counters"]
        self.env_steps, self.vector_steps, self.updates = c["env_steps"], c["vector_steps"], c["updates"]
        self.iterations, self.next_target_update = c["iterations"], c["next_target_update"]
        self.learning_after = c.get("learning_after", self.cfg.dqn.learning_starts)
        rng = ckpt.tensors("rng")
        load_rng_state(rng)
        self.rng = _rng_from_array(rng["numpy"])
        replay = self.cfg.dqn.checkpoint_replay and ckpt.has("replay")
        if replay:
            self.buffer.load_state(ckpt.tensors("replay"))
        else:  # inexact resume: an empty buffer collects dqn.learning_starts transitions before learning again
            self.learning_after = self.env_steps + self.cfg.dqn.learning_starts
        if replay and ckpt.has("envs") and hasattr(self.env, "set_state"):
            saved = ckpt.tensors("envs")
            self.env.set_state(saved["env"])
            self.obs = np.asarray(saved["obs"]).copy()
            self.episode_return = np.asarray(saved["episode_return"], dtype=np.float64).copy()
            self.episode_length = np.asarray(saved["episode_length"], dtype=np.int64).copy()
        else:  # envs that cannot save their state start fresh episodes
            self.obs = self.env.reset(seed=self.cfg.run.seed + self.env_steps)[0]
        if self.probe_env is not None and replay and ckpt.has("probe_envs") and hasattr(self.probe_env, "set_state"):
            saved = ckpt.tensors("probe_envs")
            self.probe_env.set_state(saved["env"])
            self.probe_obs = np.asarray(saved["obs"]).copy()

    def close(self) -> None:
        self.env.close()
        if self.probe_env is not None:
            self.probe_env.close()

