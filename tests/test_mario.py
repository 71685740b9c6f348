"""Super Mario Bros through the one old-gym-API adapter: env checker, action sets, vector env, life loss."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlcli.config.fields import ConfigError
from rlcli.config.schema import EnvConfig
from rlcli.envs.mario import MarioEnv, parse_mario_id
from rlcli.envs.registry import make_vec_env


def test_mario_env_passes_gymnasiums_env_checker():
    env = MarioEnv("mario", "simple", render_mode="rgb_array")
    try:
        check_env(env, skip_render_check=True)
        obs, info = env.reset(seed=0)
        assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and info["x_pos"] == 40
        assert env.render().shape == (240, 256, 3)
    finally:
        env.close()


@pytest.mark.parametrize("action_set, n", [("simple", 7), ("complex", 12), ("right_only", 5)])
def test_action_sets(action_set, n):
    env = MarioEnv("mario:SuperMarioBros-1-1-v0", action_set)
    try:
        assert env.action_space.n == n
    finally:
        env.close()


def test_running_right_moves_mario_and_dying_is_a_life_loss():
    env = MarioEnv("mario", "simple")  # SIMPLE_MOVEMENT[1] is ['right']: walk into the first goomba
    try:
        env.reset(seed=0)
        total, x = 0.0, 40
        for _ in range(200):
            _, reward, terminated, _, info = env.step(1)
            total += reward
            x = max(x, info["x_pos"])
            if info["life_loss"]:
                break
        assert info["life_loss"] and not terminated  # a life lost, the game goes on
        assert x > 200 and total > 0
    finally:
        env.close()


def test_vector_env_runs_games_in_worker_processes():
    env = make_vec_env(EnvConfig(id="mario", num_envs=2, max_episode_steps=5), seed=0)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (2, 4, 84, 84)
        for _ in range(5):
            obs, reward, terminated, truncated, info = env.step(np.array([1, 3]))
        assert truncated.all()
        assert np.stack(info["final_obs"]).shape == (2, 4, 84, 84)
    finally:
        env.close()


def test_bad_mario_ids_are_config_errors():
    assert parse_mario_id("mario:SuperMarioBros-4-2-v1") == ("downsample", (4, 2))
    with pytest.raises(ConfigError):
        parse_mario_id("mario:Zelda-v0")
