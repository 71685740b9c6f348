"""CartPole-v1 dynamics, vectorized in numpy, with a variation level.

The physics, thresholds, reward (1 per step) and 500-step limit are those of gymnasium's CartPole-v1
(Euler integration, tau = 0.02). ``variation_level`` in [0, 1] moves the dynamics linearly:
gravity 9.8 -> 14.7, pole half-length 0.5 -> 1.0, cart mass 1.0 -> 2.0.

:class:`CartPoleVectorEnv` steps B carts with one set of array operations and resets finished carts in
the same step (the returned observation is the new episode's first; the last one is in
``info["final_obs"]``, as gymnasium's SAME_STEP autoreset mode does). Its whole state, the random
generator included, can be saved and restored, which makes resumed training bit-for-bit identical.
"""

from __future__ import annotations

import json
import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

THETA_THRESHOLD = 12 * 2 * math.pi / 360  # radians
X_THRESHOLD = 2.4
MAX_EPISODE_STEPS = 500


def cartpole_physics(variation_level: float) -> dict[str, float]:
    """The physical constants at a variation level in [0, 1]."""
    v = float(variation_level)
    return {"gravity": 9.8 + 4.9 * v, "length": 0.5 + 0.5 * v, "masscart": 1.0 + 1.0 * v,
            "masspole": 0.1, "force_mag": 10.0, "tau": 0.02}


def make_cartpole(variation_level: float = 0.0, render_mode: str | None = None,
                  max_episode_steps: int = MAX_EPISODE_STEPS) -> gym.Env:
    """A single gymnasium CartPole-v1 with the varied physics (used for video and the env checker)."""
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    env = CartPoleEnv(render_mode=render_mode)
    p = cartpole_physics(variation_level)
    env.gravity, env.length, env.masscart = p["gravity"], p["length"], p["masscart"]
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length
    return gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)


class CartPoleVectorEnv(VectorEnv):
    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, variation_level: float = 0.0,
                 max_episode_steps: int = MAX_EPISODE_STEPS):
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps or MAX_EPISODE_STEPS
        p = cartpole_physics(variation_level)
        self.gravity, self.length, self.masscart = p["gravity"], p["length"], p["masscart"]
        self.masspole, self.force_mag, self.tau = p["masspole"], p["force_mag"], p["tau"]
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length
        high = np.array([X_THRESHOLD * 2, np.finfo(np.float32).max, THETA_THRESHOLD * 2,
                         np.finfo(np.float32).max], dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.state = np.zeros((num_envs, 4), dtype=np.float64)  # (B, [x, x_dot, theta, theta_dot])
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self._ones = np.ones(num_envs, dtype=np.float32)
        self.np_random = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        self.state = self.np_random.uniform(-0.05, 0.05, size=(self.num_envs, 4))
        self.steps[:] = 0
        return self.state.astype(np.float32), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        state = self.state  # (B, 4), updated in place: explicit Euler, as gymnasium's CartPole
        x_dot, theta, theta_dot = state[:, 1], state[:, 2], state[:, 3]
        force = np.where(np.asarray(actions) == 1, self.force_mag, -self.force_mag)
        costheta, sintheta = np.cos(theta), np.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / self.total_mass))
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        state[:, 0] += self.tau * x_dot  # x uses the old x_dot, theta the old theta_dot
        state[:, 1] += self.tau * xacc
        state[:, 2] += self.tau * theta_dot
        state[:, 3] += self.tau * thetaacc
        self.steps += 1
        x, theta = state[:, 0], state[:, 2]

        terminated = (np.abs(x) > X_THRESHOLD) | (np.abs(theta) > THETA_THRESHOLD)
        truncated = (self.steps >= self.max_episode_steps) & ~terminated
        rewards = self._ones.copy()  # one C call; np.ones is a Python function that costs ~10x more
        obs = self.state.astype(np.float32)
        infos: dict[str, Any] = {}
        done = terminated | truncated
        if done.any():
            infos["final_obs"] = obs  # a fresh array: obs is rebuilt below
            infos["_final_obs"] = done
            n = int(done.sum())
            self.state[done] = self.np_random.uniform(-0.05, 0.05, size=(n, 4))
            self.steps[done] = 0
            obs = self.state.astype(np.float32)
        return obs, rewards, terminated, truncated, infos

    # -- exact save/restore, used by checkpoints --------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {"state": self.state.copy(), "steps": self.steps.copy(),
                "rng": np.frombuffer(json.dumps(self.np_random.bit_generator.state).encode(), dtype=np.uint8)}

    def set_state(self, saved: dict[str, Any]) -> None:
        self.state = np.asarray(saved["state"], dtype=np.float64).copy()
        self.steps = np.asarray(saved["steps"], dtype=np.int64).copy()
        rng_state = json.loads(bytes(np.asarray(saved["rng"], dtype=np.uint8)).decode())
        self.np_random = np.random.default_rng()
        self.np_random.bit_generator.state = rng_state
