"""The factories of the environment families registered in ``rlcli/envs/__init__.py``, and
:func:`make_vec_env` / :func:`make_single_env`, which build an ``env.id`` through them.

Each family gives a vectorized env (for training; SAME_STEP autoreset, ``info["final_obs"]`` on done) and a
single gymnasium env (for video and gymnasium's env checker). Heavy packages are imported lazily, and a
missing optional package raises :class:`MissingEnvPackage` with the pip extra that installs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rlcli.registry import MissingEnvPackage, env_spec, has_variation, refuse_without_variation
from rlcli.specs import EnvSpec, load_target

if TYPE_CHECKING:
    import gymnasium as gym

__all__ = ["MissingEnvPackage", "has_variation", "make_single_env", "make_vec_env", "refuse_without_variation"]


def cartpole_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.cartpole import CartPoleVectorEnv

    return CartPoleVectorEnv(num_envs, env_cfg.variation_level, env_cfg.max_episode_steps)


def cartpole_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.cartpole import MAX_EPISODE_STEPS, make_cartpole

    return make_cartpole(env_cfg.variation_level, render_mode, env_cfg.max_episode_steps or MAX_EPISODE_STEPS)


def atari_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.atari import make_atari_vec

    return make_atari_vec(env_cfg, num_envs, seed)


def atari_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.atari import make_atari_env
    from rlcli.envs.variants import game_from_id

    return make_atari_env(game_from_id(env_cfg.id), seed, render_mode, env_cfg.max_episode_steps)


def mario_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.mario import make_mario_vec

    return make_mario_vec(env_cfg, num_envs, seed)


def mario_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.mario import make_mario_env

    return make_mario_env(env_cfg, seed, render_mode)


def minigrid_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.minigrid import make_minigrid_vec

    return make_minigrid_vec(env_cfg.variation_level, num_envs, env_cfg.max_episode_steps)


def minigrid_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.minigrid import make_minigrid

    return make_minigrid(env_cfg.variation_level, render_mode, env_cfg.max_episode_steps)


def starpilot_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.procgen import StarpilotVectorEnv

    return StarpilotVectorEnv(num_envs, env_cfg.variation_level, seed, env_cfg.max_episode_steps)


def starpilot_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.procgen import make_starpilot

    return make_starpilot(env_cfg.variation_level, seed, render_mode, env_cfg.max_episode_steps)


def darkroom_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.darkroom import MAX_STEPS, DarkRoomVectorEnv, num_tasks

    # env i gets task (seed + i) mod 80: the goal always comes from a task id
    tasks = [(seed + i) % num_tasks() for i in range(num_envs)]
    return DarkRoomVectorEnv(tasks, env_cfg.max_episode_steps or MAX_STEPS, env_cfg.terminate_on_goal)


def darkroom_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.darkroom import MAX_STEPS, DarkRoomEnv, num_tasks

    return DarkRoomEnv(seed % num_tasks(), max_steps=env_cfg.max_episode_steps or MAX_STEPS,
                       terminate_on_goal=env_cfg.terminate_on_goal, render_mode=render_mode)


def _call(spec: EnvSpec, fn: Callable, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ModuleNotFoundError as e:
        raise MissingEnvPackage(f"environment needs the package '{e.name}', which is not installed; "
                                f"install it with: pip install '{spec.package}'") from None


def make_vec_env(env_cfg, seed: int, num_envs: int | None = None) -> gym.vector.VectorEnv:
    """The training env: ``num_envs`` (default ``env_cfg.num_envs``) copies, seeded by ``seed``."""
    spec = env_spec(env_cfg.id)
    return _call(spec, load_target(spec.make_vec), env_cfg, num_envs or env_cfg.num_envs, seed)


def make_single_env(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    import os

    # rendering never opens a window or an audio device (pygame/SDL would complain on a headless machine)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    spec = env_spec(env_cfg.id)
    return _call(spec, load_target(spec.make_single), env_cfg, seed, render_mode)
