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
    # reads env.variation_level (a level changes the env): nonzero levels, gar and --shift are refused where not
    variation: bool = False


def _cartpole_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.cartpole import CartPoleVectorEnv

    return CartPoleVectorEnv(num_envs, env_cfg.variation_level, env_cfg.max_episode_steps)


def _cartpole_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.cartpole import MAX_EPISODE_STEPS, make_cartpole

    return make_cartpole(env_cfg.variation_level, render_mode, env_cfg.max_episode_steps or MAX_EPISODE_STEPS)


def _atari_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.atari import make_atari_vec

    return make_atari_vec(env_cfg, num_envs, seed)


def _atari_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.atari import game_from_id, make_atari_env

    return make_atari_env(game_from_id(env_cfg.id), seed, render_mode, env_cfg.max_episode_steps)


def _mario_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.mario import make_mario_vec

    return make_mario_vec(env_cfg, num_envs, seed)


def _mario_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.mario import make_mario_env

    return make_mario_env(env_cfg, seed, render_mode)


def _minigrid_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.minigrid import make_minigrid_vec

    return make_minigrid_vec(env_cfg.variation_level, num_envs, env_cfg.max_episode_steps)


def _minigrid_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.minigrid import make_minigrid

    return make_minigrid(env_cfg.variation_level, render_mode, env_cfg.max_episode_steps)


def _starpilot_vec(env_cfg, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    from rlcli.envs.procgen import StarpilotVectorEnv

    return StarpilotVectorEnv(num_envs, env_cfg.variation_level, seed, env_cfg.max_episode_steps)


def _starpilot_single(env_cfg, seed: int, render_mode: str | None = None) -> gym.Env:
    from rlcli.envs.procgen import make_starpilot

    return make_starpilot(env_cfg.variation_level, seed, render_mode, env_cfg.max_episode_steps)


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
    "cartpole": EnvEntry(_cartpole_vec, _cartpole_single, "rlcli", "CartPole-v1 with varied dynamics",
                         variation=True),
    "atari": EnvEntry(_atari_vec, _atari_single, "rlcli[atari]",
                      "Atari 2600 (atari:MontezumaRevenge, atari:Pong, ...), ale-py or envpool"),
    "mario": EnvEntry(_mario_vec, _mario_single, "rlcli[mario]",
                      "Super Mario Bros (mario, or mario:SuperMarioBros-1-1-v0), gym-super-mario-bros 7.4"),
    "minigrid": EnvEntry(_minigrid_vec, _minigrid_single, "rlcli[minigrid]",
                         "MiniGrid Dynamic-Obstacles with varied layout (size 6-12, 2-8 balls)", variation=True),
    "starpilot": EnvEntry(_starpilot_vec, _starpilot_single, "rlcli[procgen]",
                          "Procgen Starpilot, 4 stacked 64x64 RGB frames, varied level set and difficulty",
                          variation=True),
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


def has_variation(env_id: str) -> bool:
    """Whether ``env.variation_level`` changes this environment (cartpole, minigrid, starpilot do)."""
    return _entry(env_id).variation


def refuse_without_variation(env_id: str, what: str) -> None:
    """ConfigError when ``env_id`` has no variations; ``what`` says what needed them ("--shift ...")."""
    if not has_variation(env_id):
        varied = ", ".join(sorted(name for name, e in ENVS.items() if e.variation))
        raise ConfigError(f"{what}, but environment '{env_id}' has no variations (env.variation_level does not "
                          f"change it); variations exist for {varied}")


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
