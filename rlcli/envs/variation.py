"""Training on several variation levels at once (GAR), and probing them (GAS).

:class:`LevelsVectorEnv` concatenates one vector env per variation level into a single vector env:
envs ``[i * n, (i + 1) * n)`` run at ``levels[i]``. Learners recover the level of a transition from its
env index with :meth:`LevelsVectorEnv.group_of`, so a rollout or replay buffer needs no extra field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

from rlcli.envs.registry import make_vec_env

LEVEL_SEED_STRIDE = 1_000  # env seeds of level i start at seed + i * LEVEL_SEED_STRIDE


class LevelsVectorEnv(VectorEnv):
    """``len(envs)`` vector envs with equal ``num_envs``, stepped as one (SAME_STEP autoreset kept)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, envs: list[VectorEnv], levels: list[float]):
        sizes = {e.num_envs for e in envs}
        if len(sizes) != 1:
            raise ValueError(f"every level needs the same number of envs, got {sorted(sizes)}")
        self.envs, self.levels = envs, list(levels)
        self.per_level = envs[0].num_envs
        self.num_envs = self.per_level * len(envs)
        self.single_observation_space = envs[0].single_observation_space
        self.single_action_space = envs[0].single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def group_of(self, env_index: np.ndarray) -> np.ndarray:
        """Level index (into ``levels``) of each env index."""
        return np.asarray(env_index) // self.per_level

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        obs = [e.reset(seed=None if seed is None else seed + i * LEVEL_SEED_STRIDE, options=options)[0]
               for i, e in enumerate(self.envs)]
        return np.concatenate(obs), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions)
        n = self.per_level
        results = [e.step(actions[i * n:(i + 1) * n]) for i, e in enumerate(self.envs)]
        obs, rewards, terminated, truncated = (np.concatenate([r[k] for r in results]) for k in range(4))
        infos: dict[str, Any] = {}
        if any("final_obs" in r[4] for r in results):
            final = np.empty(self.num_envs, dtype=object)
            for i, r in enumerate(results):
                if "final_obs" in r[4]:
                    mask = r[4].get("_final_obs", terminated[i * n:(i + 1) * n] | truncated[i * n:(i + 1) * n])
                    for j in np.flatnonzero(mask):
                        final[i * n + j] = r[4]["final_obs"][j]
            infos["final_obs"] = final
            infos["_final_obs"] = terminated | truncated
        return obs, rewards, terminated, truncated, infos

    def close(self, **kwargs) -> None:
        for e in self.envs:
            e.close()

    # -- exact save/restore when every level's env supports it --------------------------------------------
    def __getattr__(self, name: str):
        if name in ("get_state", "set_state") and all(hasattr(e, name) for e in self.__dict__.get("envs", [])):
            return getattr(self, f"_{name}")
        raise AttributeError(name)

    def _get_state(self) -> dict[str, Any]:
        return {str(i): e.get_state() for i, e in enumerate(self.envs)}

    def _set_state(self, saved: dict[str, Any]) -> None:
        for i, e in enumerate(self.envs):
            e.set_state(saved[str(i)])


def make_levels_env(env_cfg, levels: list[float], seed: int, num_envs_per_level: int | None = None) -> LevelsVectorEnv:
    """One vector env of ``num_envs_per_level`` (default ``env_cfg.num_envs``) envs at each level."""
    envs = [make_vec_env(dataclasses.replace(env_cfg, variation_level=float(level)),
                         seed + i * LEVEL_SEED_STRIDE, num_envs_per_level)
            for i, level in enumerate(levels)]
    return LevelsVectorEnv(envs, levels)
