"""Studies on Ray: a local two-node cluster runs a small study with the results of the local pool."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = """
[study]
algorithms = ["ppo"]
techniques = ["baseline", "reg"]
environments = ["cartpole"]
seeds = [0]
runs_dir = "{runs_dir}"
workers = 2
shift = [0.0, 1.0]
shift_episodes = 2

[config.all.run]
total_steps = 1024
eval_every = 0
eval_episodes = 2
checkpoint_every = 512
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A head node and a second node, one CPU each, each `ray start --block` in its own process group."""
    ray = pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="rlray", dir="/tmp")  # Ray's socket paths must stay short
    port = _free_port()
    address = f"127.0.0.1:{port}"
    # a private cluster on localhost: no token (a token file left in ~/.ray by another cluster would not match)
    auth = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)  # for this process's ray.init below and the study's CLI
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    common = ["--num-cpus", "1", "--object-store-memory", "80000000", "--block"]
    starts = [[str(ray_bin), "start", "--head", "--port", str(port), "--temp-dir", temp,
               "--include-dashboard=false", *common], [str(ray_bin), "start", "--address", address, *common]]
    procs = []
    try:
        for argv in starts:
            procs.append(subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
            _wait_for_port(port)
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        deadline = time.time() + 90
        while sum(n["Alive"] for n in ray.nodes()) < 2:
            assert time.time() < deadline, "the second Ray node did not join"
            time.sleep(0.5)
        ray.shutdown()
        yield address
    finally:
        for p in reversed(procs):  # only the process groups this fixture started (a graceful stop takes
            os.killpg(p.pid, signal.SIGKILL)  # tens of seconds; the test needs nothing of them any more)
            p.wait()
        shutil.rmtree(temp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(f"nothing listens on port {port}")


def _final_model(run_dir: Path) -> dict:
    from rlcli.storage.checkpoint import load_checkpoint

    return {k: v.numpy() for k, v in load_checkpoint(run_dir / "checkpoints" / "last.h5").tensors("model").items()}


def test_study_on_a_two_node_cluster_trains_what_one_process_trains(cluster, tmp_path):
    import rlcli
    from rlcli.config.presets import load_run_config

    path = tmp_path / "study.toml"
    path.write_text(STUDY.format(runs_dir=tmp_path / "ray"))
    r = subprocess.run([sys.executable, "-m", "rlcli.cli.main", "train", "--study", str(path), "--ray", cluster],
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 ran, 0 skipped (complete), 0 failed" in r.stdout and "best ppo on cartpole" in r.stdout
    nodes = set()
    for name in ("ppo-cartpole-baseline-s0", "ppo-cartpole-reg-s0"):
        log = (tmp_path / "ray" / ".study" / f"{name}.log").read_text()
        assert "GRS" in log
        nodes |= {line.split()[4] for line in log.splitlines() if line.startswith("--- on Ray node")}
        # the same run in this process (the local pool's worker runs this train()) ends with the same weights
        cfg = load_run_config(tmp_path / "ray" / ".study" / f"{name}.toml")
        cfg.run.runs_dir = str(tmp_path / "local")
        rlcli.train(cfg)
        a, b = _final_model(tmp_path / "ray" / name), _final_model(tmp_path / "local" / name)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert len(nodes) == 2 and (tmp_path / "ray" / "best" / "best.toml").is_file()  # one run per node


def test_a_retried_task_resumes_from_the_last_checkpoint_or_starts_afresh(tmp_path):
    from rlcli.study.ray_backend import retried_mode

    with_ckpt, without = tmp_path / "a", tmp_path / "b"
    (with_ckpt / "checkpoints").mkdir(parents=True)
    (with_ckpt / "checkpoints" / "last.h5").write_bytes(b"x")
    without.mkdir()
    (without / "metrics.h5").write_bytes(b"x")  # killed before its first checkpoint
    assert retried_mode(with_ckpt, "new") == "resume" and retried_mode(with_ckpt, "evaluate") == "evaluate"
    assert retried_mode(without, "new") == "new" and not without.exists()
    assert retried_mode(tmp_path / "c", "new") == "new"


def test_a_node_that_cannot_write_the_runs_folder_fails_the_run_with_the_reason(tmp_path):
    pytest.importorskip("ray")
    from rlcli.study.ray_backend import run_on_node

    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the runs folder should be: nothing can be created under it
    cmd = [sys.executable, "-m", "rlcli.study.worker", "cfg.toml", str(blocker / "runs" / "r"), "new", "0", "1"]
    rc, why = run_on_node(cmd, str(tmp_path / "log"))
    assert rc == -1 and "cannot write" in why and "storage every Ray node sees" in why


def test_without_ray_nothing_imports_it():
    code = ("import sys, rlcli.cli.main, rlcli.study.runner; rlcli.cli.main._register(); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
