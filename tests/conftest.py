"""Shared test helpers: run the real ``rlcli`` process, and a small PPO config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def rlcli_command() -> list[str]:
    """The installed console script when present (what users run), else ``python -m rlcli.cli.main``."""
    script = Path(sys.executable).parent / "rlcli"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rlcli.cli.main"]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None,
            check_rc: int | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run(rlcli_command() + list(args), cwd=cwd or REPO, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    if check_rc is not None:
        assert proc.returncode == check_rc, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def small_ppo(tmp_path):
    """A short PPO-on-CartPole config writing into tmp_path (2 iterations of 4 envs x 128 steps)."""
    import rlcli

    def make(steps: int = 1024, **overrides):
        sets = [f"run.total_steps={steps}", f"run.runs_dir={tmp_path}", "run.eval_episodes=2",
                *[f"{k}={v}" for k, v in overrides.items()]]
        return rlcli.resolve_config("ppo", env="cartpole", overrides=sets)

    return make


def launch_two_ranks(script: str, out: Path, timeout: float = 240) -> None:
    """Run ``python script out`` as ranks 0 and 1 of a gloo process group on this machine (what torchrun
    sets up: RANK, WORLD_SIZE, MASTER_ADDR/PORT), and fail with both logs unless both exit 0."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(REPO)}
        procs.append(subprocess.Popen([sys.executable, script, str(out)], env=env, cwd=out,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=timeout)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)
