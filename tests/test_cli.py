"""The real ``rlcli`` process: train, eval, resume, profile, bad input and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import h5py
from conftest import REPO, rlcli_command

from rlcli.storage.checkpoint import load_checkpoint

TINY = ["--steps", "512", "--set", "run.eval_episodes=2"]


def test_train_eval_video_and_resume(cli, tmp_path):
    out = cli("train", "ppo", "--env", "cartpole", *TINY, "--runs-dir", str(tmp_path), "--name", "r1",
              "--tensorboard", check_rc=0)
    assert "done: 512 steps" in out.stdout and "final eval return" in out.stdout
    run = tmp_path / "r1"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    assert {"train/policy_loss", "eval/return", "time/steps_per_second"} <= set(events.Tags()["scalars"])
    assert (run / "config.toml").is_file() and (run / "metrics.h5").is_file()
    assert (run / "checkpoints" / "last.h5").is_file() and (run / "checkpoints" / "best.h5").is_file()

    ev = cli("eval", str(run), "--episodes", "3", "--video", str(tmp_path / "ep.gif"), check_rc=0)
    assert "3 deterministic episodes: return" in ev.stdout
    assert (tmp_path / "ep.gif").stat().st_size > 1000
    cli("eval", str(run), "--episodes", "1", "--video", str(tmp_path / "ep.mp4"), check_rc=0)
    assert (tmp_path / "ep.mp4").read_bytes()[4:8] == b"ftyp"  # an MP4 container

    cli("train", "ppo", "--resume", str(run), "--steps", "1024", check_rc=0)
    assert load_checkpoint(run / "checkpoints" / "last.h5").attrs["step"] == 1024


def test_dry_run_prints_resolved_toml_and_writes_nothing(cli, tmp_path):
    out = cli("train", "ppo", "--env", "cartpole", "--set", "ppo.learning_rate=1e-3", "--dry-run",
              "--runs-dir", str(tmp_path), check_rc=0)
    assert "learning_rate = 0.001" in out.stdout and "[ppo]" in out.stdout
    assert list(tmp_path.iterdir()) == []


def test_config_options_lists_every_key(cli):
    out = cli("train", "ppo", "--config-options", check_rc=0)
    for key in ("ppo.learning_rate", "ppo.clip_coef", "run.total_steps", "env.variation_level"):
        assert key in out.stdout


def test_bad_input_exits_2_with_one_line(cli, tmp_path):
    cases = [
        (["train", "ppo", "--env", "cartpole", "--set", "ppo.learning_rat=1e-3"], "did you mean 'ppo.learning_rate'"),
        (["train", "ppo", "--env", "cartpole", "--set", "ppo.num_steps=many"], "ppo.num_steps"),
        (["train", "ppo", "--env", "cartpole", "--set", "ppo.gamma=2"], "ppo.gamma"),
        (["train", "ppo", "--env", "cartpol"], "did you mean 'cartpole'"),
        (["train", "ppo", "--env", "cartpole", "--preset", "nope"], "nope"),
        (["eval", str(tmp_path / "missing")], "missing"),
    ]
    for args, message in cases:
        proc = cli(*args, "--runs-dir", str(tmp_path)) if args[0] == "train" else cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not any(tmp_path.iterdir()), "bad input writes nothing"


def test_unknown_flag_exits_2(cli):
    proc = cli("train", "ppo", "--env", "cartpole", "--stepz", "10")
    assert proc.returncode == 2 and "--stepz" in proc.stderr


def test_corrupt_checkpoint_and_metrics_exit_2_and_are_not_overwritten(cli, tmp_path):
    cli("train", "ppo", "--env", "cartpole", *TINY, "--runs-dir", str(tmp_path), "--name", "r", check_rc=0)
    run = tmp_path / "r"
    last = run / "checkpoints" / "last.h5"
    last.write_bytes(last.read_bytes()[:2000])  # a truncated file, as after a full disk
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for args in (["eval", str(run)], ["train", "ppo", "--resume", str(run), "--steps", "4096"]):
        proc = cli(*args)
        assert proc.returncode == 2, proc.stderr
        assert "last.h5" in proc.stderr and "corrupt" in proc.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before

    cli("train", "ppo", "--env", "cartpole", *TINY, "--runs-dir", str(tmp_path), "--name", "r2", check_rc=0)
    (tmp_path / "r2" / "metrics.h5").write_bytes(b"garbage")
    proc = cli("train", "ppo", "--resume", str(tmp_path / "r2"), "--steps", "4096")
    assert proc.returncode == 2 and "metrics.h5" in proc.stderr
    assert (tmp_path / "r2" / "metrics.h5").read_bytes() == b"garbage"


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(rlcli_command() + ["train", "ppo", "--env", "cartpole", "--steps", "10000000",
                                               "--runs-dir", str(tmp_path), "--name", "long", "--quiet"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "long" / "metrics.h5"
    deadline = time.time() + 120
    while not metrics.exists() and time.time() < deadline:  # metrics are flushed every 2 s of training
        time.sleep(0.2)
    assert metrics.exists(), "training started"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, stderr
    assert "interrupted at step" in stderr and "--resume" in stderr
    saved = load_checkpoint(tmp_path / "long" / "checkpoints" / "last.h5")
    step = int(saved.attrs["step"])
    assert step > 0
    with h5py.File(metrics) as f:
        assert f["policy_loss"][-1, 0] == step, "metrics were flushed up to the checkpoint"

    from conftest import run_cli

    run_cli("train", "ppo", "--resume", str(tmp_path / "long"), "--steps", str(step + 1024),
            "--set", "run.eval_episodes=2", check_rc=0)
    assert load_checkpoint(tmp_path / "long" / "checkpoints" / "last.h5").attrs["step"] == step + 1024


def test_profile_prints_the_phase_breakdown_and_writes_a_trace(cli, tmp_path):
    # short iterations (4 envs x 32 steps) keep the traced window small
    out = cli("profile", "train", "ppo", "--env", "cartpole", "--steps", "1024", "--set", "ppo.num_steps=32",
              "--trace", str(tmp_path / "tr"), check_rc=0)
    for phase in ("env", "inference", "learning", "storage", "steps/s"):
        assert phase in out.stdout
    traces = list((tmp_path / "tr").glob("*.json*"))
    assert traces and traces[0].stat().st_size > 10_000
    assert out.stderr == ""  # no profiler noise ("USDT: ... profiler_start")


def test_profile_rejects_a_bad_inner_command(cli):
    proc = cli("profile", "train", "ppo", "--env", "cartpole", "--set", "ppo.nope=1")
    assert proc.returncode == 2 and "ppo.nope" in proc.stderr
    proc = cli("profile", "fly")
    assert proc.returncode == 2 and "train" in proc.stderr


def test_help_lists_the_subcommands(cli):
    out = cli("--help", check_rc=0)
    for command in ("train", "eval", "profile"):
        assert command in out.stdout
