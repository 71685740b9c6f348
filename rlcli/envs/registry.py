"""Environment registry: one place that maps an ``env.id`` to its factories.

Each entry gives a vectorized env (for training; SAME_STEP autoreset, ``info["final_obs"]`` on done) and a
single gymnasium env (for video and gymnasium's env checker). Heavy packages are imported lazily, and a
missing optional package raises :class:`MissingEnvPackage` with the pip extra that installs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym

from rlcli.config.fields import ConfigError, close_match


class MissingEnvPackage(ConfigError):
    """The environment's package is not installed (exit 2, with the install command)."""


@dataclass(frozen=True)
class EnvEntry:
    make_vec: Callable[..., gym.vector.VectorEnv]  # (env_cfg, num_envs, seed) -> VectorEnv
    make_single: Callable[..., gym.Env]  # (env_cfg, seed, render_mode) -> Env
    package: str  # pip extra that installs it, for the error message
    doc: str


def _cartpole_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.cartpole import CartPoleVectorEnv

    return CartPoleVectorEnv(num_envs, env_cfg.variation_level, env_cfg.max_episode_steps)


def _cartpole_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.cartpole import MAX_EPISODE_STEPS, make_cartpole

    return make_cartpole(env_cfg.variation_level, render_mode, env_cfg.max_episode_steps or MAX_EPISODE_STEPS)


def _darkroom_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.darkroom import MAX_STEPS, DarkRoomVectorEnv, num_tasks

    # env i gets task (seed + i) mod 80: the goal always comes from a task id
    tasks = [(seed + i) % num_tasks() for i in range(num_envs)]
    return DarkRoomVectorEnv(tasks, env_cfg.max_episode_steps or MAX_STEPS, env_cfg.terminate_on_goal)


def _darkroom_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.darkroom import MAX_STEPS, DarkRoomEnv, num_tasks

    return DarkRoomEnv(seed % num_tasks(), max_steps=env_cfg.max_episode_steps or MAX_STEPS,
                       terminate_on_goal=env_cfg.terminate_on_goal, render_mode=render_mode)


ENVS: dict[str, EnvEntry] = {
    "cartpole": EnvEntry(_cartpole_vec, _cartpole_single, "rlcli", "CartPole-v1 with varied dynamics"),
    "darkroom": EnvEntry(_darkroom_vec, _darkroom_single, "rlcli", "DarkRoom 9x9 (Algorithm Distillation)"),
}


def register_env(name: str, entry: EnvEntry) -> None:
    ENVS[name] = entry


def _entry(env_id: str) -> EnvEntry:
    family = env_id.split(":")[0]
    if family not in ENVS:
        raise ConfigError(f"unknown environment '{env_id}'{close_match(family, list(ENVS))}; "
                          f"choose one of {', '.join(sorted(ENVS))}")
    return ENVS[family]


def _call(entry: EnvEntry, fn: Callable, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ModuleNotFoundError as e:
        raise MissingEnvPackage(f"environment needs the package '{e.name}', which is not installed; "
                                f"install it with: pip install '{entry.package}'") from None


def make_vec_env(env_cfg, seed: int, num_envs: int | None = None) -> gym.vector.VectorEnv:
    """The training env: ``num_envs`` (default ``env_cfg.num_envs``) copies, seeded by ``seed``."""
    entry = _entry(env_cfg.id)
    return _call(entry, entry.make_vec, env_cfg, num_envs or env_cfg.num_envs, seed)


def make_single_env(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    import os

    # rendering never opens a window or an audio device (pygame/SDL would complain on a headless machine)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    entry = _entry(env_cfg.id)
    return _call(entry, entry.make_single, env_cfg, seed, render_mode)
