"""The varied environments: their ranges, gymnasium's env checker, and Starpilot end to end on CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlcli
from rlcli.envs.cartpole import cartpole_physics
from rlcli.envs.registry import make_single_env, make_vec_env

REPO = Path(__file__).resolve().parents[1]


def _env_cfg(env_id: str, level: float, **run):
    return rlcli.resolve_config("ppo", env=env_id, overrides=[f"env.variation_level={level}"]).env


def test_cartpole_dynamics_move_linearly_with_the_level():
    for v, (g, length, mass) in [(0.0, (9.8, 0.5, 1.0)), (0.5, (12.25, 0.75, 1.5)), (1.0, (14.7, 1.0, 2.0))]:
        p = cartpole_physics(v)
        assert (p["gravity"], p["length"], p["masscart"]) == pytest.approx((g, length, mass))


@pytest.mark.parametrize("level", [0.0, 1.0])
def test_cartpole_passes_the_env_checker(level):
    check_env(make_single_env(_env_cfg("cartpole", level), seed=0).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("level,size,balls", [(0.0, 6, 2), (0.5, 9, 5), (1.0, 12, 8)])
def test_minigrid_layout_varies_with_the_level_and_passes_the_checker(level, size, balls):
    env = make_single_env(_env_cfg("minigrid", level), seed=0)
    check_env(env, skip_render_check=True)
    env.reset(seed=1)
    u = env.unwrapped
    assert (u.width, u.height, len(u.obstacles)) == (size, size, balls)
    assert u.max_steps == 100  # the seed's episode limit
    env.close()


def test_minigrid_view_is_minigrids_own_view_one_hot():
    from minigrid.envs.dynamicobstacles import DynamicObstaclesEnv

    from rlcli.envs.minigrid import _KIND_INDEX, CELL_KINDS, OBS_DIM, VIEW

    env = make_single_env(_env_cfg("minigrid", 1.0), seed=0)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(150):
        reference = DynamicObstaclesEnv.gen_obs(env.unwrapped)  # minigrid's dict observation
        one_hot = obs[:VIEW * VIEW * len(CELL_KINDS)].reshape(VIEW, VIEW, len(CELL_KINDS))
        assert np.array_equal(one_hot.argmax(-1), _KIND_INDEX[reference["image"][:, :, 0]])
        assert obs[-4:].argmax() == reference["direction"] and obs.shape == (OBS_DIM,) and obs.sum() == 50
        obs, _, term, trunc, _ = env.step(int(rng.integers(3)))
        if term or trunc:
            obs, _ = env.reset()


def test_minigrid_vector_env_autoresets_with_final_obs():
    env = make_vec_env(_env_cfg("minigrid", 0.0), seed=0, num_envs=3)
    env.reset(seed=0)
    ended = 0
    for _ in range(40):
        _, reward, term, trunc, info = env.step(np.full(3, 2))  # always forward: walls end episodes with -1
        for i in np.flatnonzero(term | trunc):
            assert info["final_obs"][i].shape == env.single_observation_space.shape
            ended += 1
    assert ended > 0
    env.close()


def test_starpilot_options_follow_the_level():
    from rlcli.envs.procgen import starpilot_options

    assert starpilot_options(0.0) == {"num_levels": 200, "distribution_mode": "easy"}
    assert starpilot_options(0.25) == {"num_levels": 267, "distribution_mode": "easy"}
    assert starpilot_options(0.5) == {"num_levels": 400, "distribution_mode": "hard"}
    assert starpilot_options(1.0) == {"num_levels": 0, "distribution_mode": "hard"}  # 0 = unlimited


def test_starpilot_passes_the_env_checker_with_stacked_frames():
    env = make_single_env(_env_cfg("starpilot", 0.0), seed=0)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (12, 64, 64) and obs.dtype == np.uint8
    assert np.array_equal(obs[:3], obs[9:])  # a new episode's stack repeats its first frame
    frames = [obs[9:]]
    for _ in range(3):
        obs, *_ = env.step(0)
        frames.append(obs[9:])
    assert np.array_equal(obs[:3], frames[0]) and np.array_equal(obs[3:6], frames[1])  # oldest first
    env.close()


def test_starpilot_time_limit_is_refused():
    from rlcli.config.fields import ConfigError

    with pytest.raises(ConfigError, match="max_episode_steps"):
        make_vec_env(rlcli.resolve_config("ppo", env="starpilot", overrides=["env.max_episode_steps=50"]).env, 0)


def test_starpilot_ppo_cnn_end_to_end_on_cpu(tmp_path):
    """`rlcli train ppo --env starpilot` (preset: cnn policy) for a few hundred steps, then `rlcli eval`."""
    base = [sys.executable, "-m", "rlcli.cli.main"]
    out = subprocess.run(base + ["train", "ppo", "--env", "starpilot", "--steps", "256", "--runs-dir", str(tmp_path),
                                 "--name", "sp", "-q", "--set", "env.num_envs=4", "--set", "ppo.num_steps=32",
                                 "--set", "ppo.num_minibatches=2", "--set", "run.eval_episodes=2"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "policy" in (tmp_path / "sp" / "config.toml").read_text()
    assert 'name = "cnn"' in (tmp_path / "sp" / "config.toml").read_text()
    ev = subprocess.run(base + ["eval", str(tmp_path / "sp"), "-n", "1", "--set", "env.variation_level=1"],
                        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert ev.returncode == 0, ev.stderr[-2000:]


# -- envs without variations (darkroom, atari, mario) refuse what needs one ---------------------------------

@pytest.mark.parametrize("env_id", ["darkroom", "atari:Pong", "mario"])
def test_env_without_variation_refuses_a_nonzero_level_and_gar(env_id):
    from rlcli.config.fields import ConfigError

    with pytest.raises(ConfigError, match=f"environment '{env_id}' has no variations"):
        rlcli.resolve_config("ppo", env=env_id, overrides=["env.variation_level=0.5"])
    for algo, technique in [("ppo", "gar"), ("dqn", "gar+reg")]:
        with pytest.raises(ConfigError, match="trains on several variation levels"):
            rlcli.resolve_config(algo, env=env_id, extra={"run": {"technique": technique}})
    rlcli.resolve_config("ppo", env=env_id, extra={"run": {"technique": "reg"}})  # level 0 without gar is fine


@pytest.mark.parametrize("env_id", ["cartpole", "minigrid", "starpilot"])
def test_varied_envs_keep_their_levels_and_gar(env_id):
    from rlcli.envs.registry import has_variation

    assert has_variation(env_id)
    cfg = rlcli.resolve_config("ppo", env=env_id, overrides=["env.variation_level=0.5"],
                               extra={"run": {"technique": "gar"}})
    assert cfg.env.variation_level == 0.5


def test_cli_refuses_variation_on_darkroom_before_any_work(tmp_path, cli):
    for extra in (["--set", "env.variation_level=0.25"], ["--technique", "gar"]):
        out = cli("train", "ppo", "--env", "darkroom", "--steps", "64", "--runs-dir", str(tmp_path), "--name", "x",
                  *extra, check_rc=2)
        assert out.stderr.count("\n") == 1 and "has no variations" in out.stderr, out.stderr
    assert not any(tmp_path.iterdir())


def test_shift_evaluation_of_a_darkroom_run_is_refused(tmp_path, cli):
    from rlcli.engine.train import build_algorithm

    cfg = rlcli.resolve_config("ppo", env="darkroom", overrides=["ppo.num_steps=16", "env.num_envs=2",
                                                                  "run.eval_episodes=1"],
                               extra={"run": {"total_steps": 32, "runs_dir": str(tmp_path), "name": "dr"}})
    algo = build_algorithm(cfg)
    assert algo.probe is None  # no GAS probe: the levels would be identical copies
    algo.close()
    rlcli.train(cfg)
    before = sorted(p.name for p in (tmp_path / "dr").iterdir())
    out = cli("eval", str(tmp_path / "dr"), "--shift", "0,0.5,1", "-n", "1", check_rc=2)
    assert "has no variations" in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert sorted(p.name for p in (tmp_path / "dr").iterdir()) == before  # no shift.h5
