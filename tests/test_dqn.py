"""DQN: the replay buffer's n-step returns, the epsilon schedule, the double-DQN target, training, checkpoints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rlcli
from rlcli.config.fields import ConfigError
from rlcli.engine.replay_buffer import ReplayBuffer
from rlcli.engine.train import build_algorithm
from rlcli.storage.checkpoint import load_checkpoint
from rlcli.storage.metrics import read_metrics

REPO = Path(__file__).resolve().parents[1]


def _filled_buffer() -> ReplayBuffer:
    """One env, 6 steps: rewards 1..6, the episode terminates after step 2 (0-based), obs = step index."""
    buf = ReplayBuffer(8, 1, (1,), np.float32, torch.device("cpu"))
    for t in range(6):
        buf.add(np.array([[t]], np.float32), np.array([0]), np.array([t + 1.0]), np.array([[t + 0.5]], np.float32),
                np.array([t == 2]), np.array([False]))
    return buf


class _FixedStart:
    """An rng stand-in that makes ``sample`` read rows 0..k-1 in order (integers) and env 0 (choice)."""

    def __init__(self, starts):
        self.starts = np.asarray(starts)

    def integers(self, low, high, size):
        assert self.starts.max() < high
        return self.starts

    def choice(self, a, size):
        return np.zeros(size, dtype=np.int64)


def test_n_step_returns_stop_at_episode_end_and_skip_bootstrap_after_termination():
    buf = _filled_buffer()
    b = buf.sample(4, _FixedStart([0, 1, 2, 3]), n_step=3, gamma=0.5)
    # t=0: 1 + .5*2 + .25*3, the episode ended at t=2 (terminated): no bootstrap
    # t=1: 2 + .5*3 (stops at the end), t=2: 3, t=3: 4 + .5*5 + .25*6, bootstrap from after t=5 with .5^3
    assert b["returns"].tolist() == pytest.approx([2.75, 3.5, 3.0, 8.0])
    assert b["discounts"].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.125])
    assert b["next_obs"][:, 0].tolist() == pytest.approx([2.5, 2.5, 2.5, 5.5])
    one = buf.sample(2, _FixedStart([0, 3]), n_step=1, gamma=0.5)
    assert one["returns"].tolist() == [1.0, 4.0] and one["discounts"].tolist() == [0.5, 0.5]


def test_buffer_wraps_and_never_reads_past_the_newest_row():
    buf = ReplayBuffer(4, 2, (1,), np.float32, torch.device("cpu"))
    for t in range(10):
        buf.add(np.full((2, 1), t, np.float32), np.zeros(2, np.int64), np.ones(2), np.full((2, 1), t + 1, np.float32),
                np.zeros(2, bool), np.zeros(2, bool))
    b = buf.sample(500, np.random.default_rng(0), n_step=2, gamma=1.0)
    # rows hold steps 6..9; a 2-step sample may start at 6, 7 or 8 only
    assert set(b["obs"][:, 0].tolist()) == {6.0, 7.0, 8.0}
    assert torch.equal(b["next_obs"][:, 0], b["obs"][:, 0] + 2)
    assert torch.all(b["returns"] == 2.0)


def test_epsilon_decays_linearly_over_70_percent_then_stays():
    cfg = rlcli.resolve_config("dqn", env="cartpole", extra={"run": {"total_steps": 10_000}})
    algo = build_algorithm(cfg)
    try:
        eps = []
        for step in (0, 3500, 7000, 9999):
            algo.env_steps = step
            eps.append(algo.epsilon())
    finally:
        algo.close()
    assert eps == pytest.approx([1.0, 0.525, 0.05, 0.05])


def test_double_dqn_target_uses_online_argmax_and_target_value():
    cfg = rlcli.resolve_config("dqn", env="cartpole", overrides=["dqn.normalize_obs=false"])
    algo = build_algorithm(cfg)
    try:
        obs = torch.randn(8, 4)
        next_obs = torch.randn(8, 4)
        with torch.no_grad():
            for p in algo.target.parameters():
                p.add_(torch.randn_like(p))  # make the two networks differ
        batch = {"obs": obs, "actions": torch.zeros(8, dtype=torch.int64), "returns": torch.ones(8),
                 "next_obs": next_obs, "discounts": torch.full((8,), 0.9)}
        with torch.no_grad():
            a_star = algo.q(next_obs).argmax(1)
            expected = 1 + 0.9 * algo.target(next_obs).gather(1, a_star[:, None]).squeeze(1)
            q = algo.q(obs)[:, 0]
        loss = algo.td_loss(batch)
        assert loss.item() == pytest.approx(float(torch.nn.functional.smooth_l1_loss(q, expected)), rel=1e-5)
    finally:
        algo.close()


def test_dqn_learns_cartpole_a_little_and_its_checkpoint_plays(tmp_path):
    """A short run beats the random policy (~20 steps) and `rlcli eval` replays the saved network."""
    cfg = rlcli.resolve_config("dqn", env="cartpole", overrides=["dqn.learning_rate=1e-3", "env.num_envs=4",
                                                                 "dqn.exploration_fraction=0.5", "dqn.n_step=3"],
                               extra={"run": {"total_steps": 12_000, "runs_dir": str(tmp_path), "name": "d",
                                              "seed": 1}})
    result = rlcli.train(cfg)
    assert result.final_eval_return > 60
    ckpt = load_checkpoint(tmp_path / "d" / "checkpoints" / "last.h5")
    assert ckpt.has("obs_rms") and ckpt.has("target") and ckpt.documents["counters"]["updates"] > 0
    m = read_metrics(tmp_path / "d" / "metrics.h5")
    assert m["epsilon"][-1, 1] == pytest.approx(0.05)
    out = subprocess.run([sys.executable, "-m", "rlcli.cli.main", "eval", str(tmp_path / "d"), "-n", "5"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "return" in out.stdout


# -- exact resume ------------------------------------------------------------------------------------------

def test_replay_buffer_state_restores_every_byte_after_wrapping():
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(7, 3, (2,), np.float32, torch.device("cpu"))
    obs = rng.normal(size=(3, 2)).astype(np.float32)
    for _ in range(11):  # wraps: 11 rows into 7
        nxt = rng.normal(size=(3, 2)).astype(np.float32)
        ended = rng.random(3) < 0.3
        real = nxt.copy()
        real[ended] = -0.0  # a final observation that differs from the next row's obs only in its sign bit
        buf.add(obs, rng.integers(0, 2, 3), rng.normal(size=3), real, ended & (rng.random(3) < 0.5), ended)
        obs = nxt
    saved = buf.state()
    assert len(saved["next_obs"]) < 7 * 3  # only the next observations that are not the next row's obs
    fresh = ReplayBuffer(7, 3, (2,), np.float32, torch.device("cpu"))
    fresh.load_state(saved)
    for name in ("obs", "next_obs", "actions", "rewards", "terminated", "ended"):
        assert getattr(fresh, name).tobytes() == getattr(buf, name).tobytes(), name
    assert (fresh.pos, fresh.rows) == (buf.pos, buf.rows)
    with pytest.raises(ConfigError, match="checkpoint_replay=false"):
        ReplayBuffer(8, 3, (2,), np.float32, torch.device("cpu")).load_state(saved)


def _small_dqn(tmp_path, steps: int, name: str, *sets: str):
    # epsilon constant (exploration_fraction 0): its schedule spans run.total_steps, which a resume to 2N changes;
    # a 1000-transition buffer wraps before N; the GAS probe runs (its envs are saved too)
    over = ["env.num_envs=4", "dqn.learning_starts=256", "dqn.buffer_size=1000", "dqn.exploration_fraction=0",
            "dqn.end_epsilon=0.3", "dqn.target_update_every=128", "gar.gas_every=3", "gar.gas_probe_steps=16",
            "run.eval_episodes=3", *sets]
    return rlcli.resolve_config("dqn", env="cartpole", overrides=over,
                                extra={"run": {"total_steps": steps, "runs_dir": str(tmp_path), "name": name}})


@pytest.mark.parametrize("technique", ["baseline", "gar+reg"])
def test_dqn_resume_n_to_2n_equals_2n_in_one_go(tmp_path, technique):
    straight = rlcli.train(_small_dqn(tmp_path, 2048, "straight", f"run.technique={technique}"))
    first = _small_dqn(tmp_path, 1024, "resumed", f"run.technique={technique}")
    rlcli.train(first)
    second = first.copy()
    second.run.total_steps = 2048
    resumed = rlcli.train(second, resume=tmp_path / "resumed")
    a = load_checkpoint(straight.run_dir / "checkpoints" / "last.h5")
    b = load_checkpoint(resumed.run_dir / "checkpoints" / "last.h5")
    for group in ("model", "target", "obs_rms"):
        ta, tb = a.tensors(group), b.tensors(group)
        assert ta.keys() == tb.keys()
        for k in ta:
            assert torch.equal(ta[k], tb[k]), (group, k)
    opt_a, opt_b = a.tensors("optimizer"), b.tensors("optimizer")
    for pid in opt_a:
        assert torch.equal(opt_a[pid]["exp_avg_sq"], opt_b[pid]["exp_avg_sq"])
    assert a.documents["counters"] == b.documents["counters"]
    assert (resumed.final_eval_return, resumed.final_eval_std) == (straight.final_eval_return,
                                                                   straight.final_eval_std)
    ma, mb = read_metrics(straight.run_dir / "metrics.h5"), read_metrics(resumed.run_dir / "metrics.h5")
    assert np.array_equal(ma["td_loss"], mb["td_loss"]) and np.array_equal(ma["gas"], mb["gas"])
    assert mb["td_loss"][:, 0].tolist() == sorted(set(mb["td_loss"][:, 0].tolist()))  # each step once


def test_dqn_without_replay_in_the_checkpoint_resumes_inexactly_and_refills_first(tmp_path):
    first = _small_dqn(tmp_path, 1024, "r", "dqn.checkpoint_replay=false")
    rlcli.train(first)
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.h5")
    assert not ckpt.has("replay") and not ckpt.has("envs")
    updates = ckpt.documents["counters"]["updates"]
    second = first.copy()
    second.run.total_steps = 1024 + 256
    rlcli.train(second, resume=tmp_path / "r")
    after = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.h5").documents["counters"]
    assert after["updates"] == updates  # the first 256 steps after the resume only refill the buffer
    assert after["learning_after"] == 1024 + 256


def test_dqn_interrupted_at_n_and_resumed_equals_an_uninterrupted_run_with_its_epsilon_schedule(tmp_path):
    """Ctrl-C at N of a 2N run, then --resume: the same run.total_steps, so epsilon's decay is the same."""
    import os
    import signal

    from rlcli.engine.train import TrainingInterrupted

    sets = ["dqn.exploration_fraction=0.7", "dqn.end_epsilon=0.05"]
    straight = rlcli.train(_small_dqn(tmp_path, 2048, "straight", *sets))
    cut = _small_dqn(tmp_path, 2048, "cut", *sets)

    def ctrl_c_at_n(step: int) -> None:
        if step == 1024:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        rlcli.train(cut, callbacks=[ctrl_c_at_n])
    resumed = rlcli.train(cut.copy(), resume=tmp_path / "cut")
    a = load_checkpoint(straight.run_dir / "checkpoints" / "last.h5").tensors("model")
    b = load_checkpoint(resumed.run_dir / "checkpoints" / "last.h5").tensors("model")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.final_eval_return == straight.final_eval_return


def test_dqn_refuses_an_env_without_a_box_observation_space(tmp_path):
    cfg = rlcli.resolve_config("dqn", env="darkroom", extra={"run": {"runs_dir": str(tmp_path), "name": "d"}})
    with pytest.raises(ConfigError, match="Box observation space"):
        rlcli.train(cfg)
    assert not (tmp_path / "d").exists()
