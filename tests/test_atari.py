"""Atari envs: gymnasium's env checker, ale-py vs envpool observations, SAME_STEP autoreset, life loss, rooms."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlcli.config.fields import ConfigError
from rlcli.config.schema import EnvConfig
from rlcli.envs.atari import AtariEnv, EnvpoolAtariVectorEnv, area_resize_matrix, game_from_id
from rlcli.envs.registry import make_single_env, make_vec_env


def test_atari_env_passes_gymnasiums_env_checker():
    env = AtariEnv("Pong", seed=0, render_mode="rgb_array")
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.render().shape == (210, 160, 3)


def test_area_resize_averages_the_covered_source_span():
    w = area_resize_matrix(210, 84)
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-5)  # each output pixel is a weighted mean
    np.testing.assert_allclose(w[0, :3], [0.4, 0.4, 0.2], rtol=1e-5)  # 2.5 source rows per output row


@pytest.mark.parametrize("game", ["Pong", "MontezumaRevenge"])
def test_ale_py_and_envpool_give_the_same_observations(game):
    """Same seed, no random no-ops, same actions: the frames agree up to +-1 rounding of a few pixels
    (cv2's fixed-point INTER_AREA in envpool vs float here), and rewards and episode ends agree exactly."""
    ale = AtariEnv(game, seed=3, noop_max=1)
    pool = EnvpoolAtariVectorEnv(game, 1, seed=3, noop_max=1)
    try:
        a, _ = ale.reset(seed=3)
        e, _ = pool.reset()
        assert np.array_equal(a, e[0])
        rng = np.random.default_rng(0)
        differing = 0
        for _ in range(150):
            action = int(rng.integers(0, ale.action_space.n))
            a, ra, ta, _, ia = ale.step(action)
            e, re_, te, _, ie = pool.step(np.array([action]))
            if ta:
                break
            assert np.abs(a.astype(int) - e[0]).max() <= 1
            differing += int((a != e[0]).sum())
            assert ra == re_[0] and ta == te[0]
            assert ia["lives"] == ie["lives"][0] and ia["life_loss"] == ie["life_loss"][0]
            if "room" in ia:
                assert ia["room"] == ie["room"][0]
        assert differing <= 150 * 4  # at most a few pixels per step out of 4 x 84 x 84
    finally:
        pool.close()


@pytest.mark.parametrize("backend", ["ale-py", "envpool"])
def test_vector_env_resets_finished_games_in_the_same_step(backend):
    cfg = EnvConfig(id="atari:MontezumaRevenge", num_envs=2, max_episode_steps=20, backend=backend)
    env = make_vec_env(cfg, seed=0)
    try:
        obs, info = env.reset(seed=0)
        assert obs.shape == (2, 4, 84, 84)
        rooms = set()
        for _ in range(20):
            obs, reward, terminated, truncated, info = env.step(np.zeros(2, dtype=np.int64))
            rooms.update(np.asarray(info["room"]).tolist())
        assert truncated.all() and not terminated.any()
        final = np.stack(info["final_obs"])
        assert final.shape == (2, 4, 84, 84) and final.dtype == np.uint8
        # the returned observation starts a new game: its 4 stacked frames are one repeated frame
        assert all(np.array_equal(obs[i, 0], obs[i, 3]) for i in range(2))
        assert not np.array_equal(final[0], obs[0])
        assert rooms == {1}  # Montezuma's first room
    finally:
        env.close()


def test_losing_a_life_is_reported_without_ending_the_game():
    env = AtariEnv("MontezumaRevenge", seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    losses = 0
    for _ in range(400):
        _, _, terminated, _, info = env.step(int(rng.integers(0, env.action_space.n)))
        losses += info["life_loss"]
        if info["life_loss"]:
            assert not terminated and info["lives"] > 0
        if terminated:
            break
    assert losses >= 1


def test_bad_atari_ids_are_config_errors():
    assert game_from_id("atari:PongNoFrameskip-v4") == "Pong"
    with pytest.raises(ConfigError):
        game_from_id("atari")
    with pytest.raises(ConfigError, match="no ROM"):
        make_single_env(EnvConfig(id="atari:NoSuchGame"), seed=0)
    with pytest.raises(ConfigError, match="envpool has no"):
        make_vec_env(EnvConfig(id="atari:NoSuchGame", backend="envpool"), seed=0)
