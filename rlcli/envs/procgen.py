"""Procgen Starpilot through procgen-mirror, adapted from gym3's API to gymnasium's here and only here.

gym3 steps all envs at once (``act`` then ``observe() -> (reward, {"rgb": (N, 64, 64, 3)}, first)``) and
restarts a finished env by itself: ``first[i]`` says the observation already belongs to a new episode.
The adapter turns that into gymnasium's vector API with SAME_STEP autoreset: ``terminated[i] = first[i]``
(Procgen's own 1000-step time-out is part of the game, reported as a termination by gym3), and
``info["final_obs"]`` holds the last stack the agent saw of the finished episode (gym3 never shows the
terminal frame; as the episode terminated, no learner bootstraps from it).

Observations are the last 4 RGB frames stacked on the channel axis: uint8 (12, 64, 64), oldest first.
``variation_level`` v in [0, 1] sets the level set and the difficulty: ``num_levels = round(200 / (1 - v))``
(200, 267, 400, 800 at v = 0, 0.25, 0.5, 0.75) and unlimited levels at v = 1; ``easy`` below v = 0.5,
``hard`` from 0.5 on. Levels start at 0, so every level set contains the 200 training levels.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

from rlcli.config.fields import ConfigError

FRAMES = 4
SIZE = 64
N_ACTIONS = 15  # Procgen's full action set


def starpilot_options(variation_level: float) -> dict[str, Any]:
    """gym3 options at a variation level: num_levels (0 = unlimited) and distribution_mode."""
    v = float(variation_level)
    num_levels = 0 if v >= 1.0 else int(round(200 / (1.0 - v)))
    return {"num_levels": num_levels, "distribution_mode": "easy" if v < 0.5 else "hard"}


def _check_time_limit(max_episode_steps: int) -> None:
    if max_episode_steps:
        raise ConfigError("starpilot keeps Procgen's own 1000-step episodes (gym3 cannot restart one env "
                          "early); leave env.max_episode_steps at 0")


def _gym3_env(num: int, variation_level: float, seed: int, render_mode: str | None = None):
    from rlcli.envs.legacy_gym import import_legacy_gym

    import_legacy_gym()  # procgen imports the old gym, which prints a banner otherwise
    from procgen import ProcgenGym3Env

    return ProcgenGym3Env(num=num, env_name="starpilot", rand_seed=int(seed), start_level=0, num_threads=1,
                          render_mode=render_mode, **starpilot_options(variation_level))


def _observation_space() -> gym.spaces.Box:
    return gym.spaces.Box(0, 255, (FRAMES * 3, SIZE, SIZE), dtype=np.uint8)


class StarpilotVectorEnv(VectorEnv):
    """``num_envs`` Starpilot games in one gym3 env; reset(seed) starts a new gym3 env with that seed."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, variation_level: float, seed: int, max_episode_steps: int = 0):
        _check_time_limit(max_episode_steps)
        self.num_envs, self.variation_level, self.seed = num_envs, variation_level, seed
        self.single_observation_space = _observation_space()
        self.single_action_space = gym.spaces.Discrete(N_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.env = _gym3_env(num_envs, variation_level, seed)
        self.stack = np.zeros((num_envs, FRAMES, SIZE, SIZE, 3), dtype=np.uint8)

    def _frames(self, rgb: np.ndarray, first: np.ndarray) -> np.ndarray:
        """Push the new (N, 64, 64, 3) frames; envs starting an episode get the first frame 4 times."""
        self.stack[:, :-1] = self.stack[:, 1:]
        self.stack[:, -1] = rgb
        self.stack[first] = rgb[first][:, None]
        return self.observation()

    def observation(self) -> np.ndarray:
        n = self.num_envs
        return np.ascontiguousarray(self.stack.transpose(0, 1, 4, 2, 3).reshape(n, FRAMES * 3, SIZE, SIZE))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.env.close()
            self.env = _gym3_env(self.num_envs, self.variation_level, seed)
        _, obs, _ = self.env.observe()
        return self._frames(obs["rgb"], np.ones(self.num_envs, dtype=bool)), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        previous = self.observation()
        self.env.act(np.asarray(actions, dtype=np.int32))
        reward, obs, first = self.env.observe()
        first = np.asarray(first, dtype=bool)
        next_obs = self._frames(obs["rgb"], first)
        infos: dict[str, Any] = {}
        if first.any():
            infos["final_obs"] = previous
            infos["_final_obs"] = first
        return next_obs, np.asarray(reward, dtype=np.float32), first, np.zeros_like(first), infos


class StarpilotEnv(gym.Env):
    """One Starpilot game as a gymnasium env (for video and gymnasium's env checker)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, variation_level: float = 0.0, seed: int = 0, render_mode: str | None = None,
                 max_episode_steps: int = 0):
        _check_time_limit(max_episode_steps)
        self.variation_level, self.render_mode = variation_level, render_mode
        self.observation_space = _observation_space()
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self.vec = StarpilotVectorEnv(1, variation_level, seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)  # without a seed, the next gym3 seed comes from np_random
        obs, info = self.vec.reset(seed=seed if seed is not None else int(self.np_random.integers(2**31)))
        return obs[0], info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, _, _ = self.vec.step(np.array([action]))
        return obs[0], float(reward[0]), bool(terminated[0]), False, {}

    def render(self) -> np.ndarray:
        return np.array(self.vec.stack[0, -1])

    def close(self) -> None:
        self.vec.close()


def make_starpilot(variation_level: float = 0.0, seed: int = 0, render_mode: str | None = None,
                   max_episode_steps: int = 0) -> gym.Env:
    return StarpilotEnv(variation_level, seed, render_mode, max_episode_steps)
