"""Fault suite: every way a run can go wrong ends in one line, a clear exit code and an intact run folder.

Covers: divergence (NaN losses and weights), a generated corpus of crafted or damaged checkpoints given to
``rlcli eval`` and to ``--resume``, kill -9 at random moments, SIGINT while starting up and while training,
two writers of one run folder, paths that escape ``runs_dir``, symlinks planted in a run folder, a full
disk and a denied permission. Small and fast: real training runs here are a few hundred env steps.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import multiprocessing
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import rlcli
from rlcli.config.fields import ConfigError
from rlcli.engine.train import TrainingInterrupted
from rlcli.storage.checkpoint import load_checkpoint, save_checkpoint
from rlcli.storage.errors import NonFiniteError
from rlcli.storage.metrics import read_metrics
from rlcli.storage.runs import RunLock
from tests.conftest import REPO

# 4 envs x 32 steps = 128 env steps an iteration: runs of a few iterations take well under a second
FAST = ["ppo.num_steps=32", "run.eval_episodes=1", "run.log_interval=0.1"]


def fast_config(tmp_path: Path, steps: int = 512, name: str = "run", *extra: str):
    sets = [f"run.total_steps={steps}", f"run.runs_dir={tmp_path / 'runs'}", f"run.name={name}",
            "run.checkpoint_every=128", *FAST, *extra]
    return rlcli.resolve_config("ppo", env="cartpole", overrides=sets)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def cli_in_process(capsys, *args: str) -> tuple[int, str]:
    """(exit code, stderr) of ``rlcli ARGS`` run in this process (fast: torch is already imported)."""
    from rlcli.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    err = capsys.readouterr().err
    return int(exit_info.value.code or 0), err


def assert_one_line(err: str, *words: str) -> None:
    """One error line (``rlcli: ...``) and no traceback; progress lines (the run folder, steps) may precede it."""
    progress = ("run folder ", "step ")
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(progress)]
    assert len(lines) == 1 and lines[0].startswith("rlcli: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])


def metric_steps_once(metrics: dict[str, np.ndarray], name: str = "steps_per_second") -> np.ndarray:
    steps = metrics[name][:, 0]
    assert len(np.unique(steps)) == len(steps), f"a step logged twice: {steps}"
    assert np.all(np.diff(steps) > 0), f"steps out of order: {steps}"
    return steps


# -- divergence --------------------------------------------------------------------------------------------

def test_divergence_stops_with_exit_1_and_saves_nothing_non_finite(tmp_path, capsys):
    good = fast_config(tmp_path, 256, "good")
    rlcli.train(good)
    last = tmp_path / "runs" / "good" / "checkpoints" / "last.h5"
    before = digest(last)
    rc, err = cli_in_process(capsys, "train", "--resume", str(last.parents[1]), "--steps", "2048", "-q",
                             "--set", "ppo.learning_rate=1e37")
    assert rc == 1
    assert_one_line(err, "diverged at step", "keeps step 256")
    assert digest(last) == before, "the good last.h5 is kept"
    rc, err = cli_in_process(capsys, "train", "ppo", "--env", "cartpole", "--steps", "2048", "-q",
                             "--runs-dir", str(tmp_path / "runs"), "--name", "fresh", "--set",
                             "ppo.learning_rate=1e37", *[f"--set={s}" for s in FAST])
    assert rc == 1
    assert_one_line(err, "diverged at step", "no checkpoint was saved")
    for ckpt in (tmp_path / "runs").rglob("*.h5"):
        if ckpt.parent.name == "checkpoints":
            load_checkpoint(ckpt)  # loading refuses non-finite tensors: every saved checkpoint is finite


def test_a_non_finite_tensor_is_never_saved(tmp_path):
    with pytest.raises(NonFiniteError, match="model/w"):
        save_checkpoint(tmp_path / "x.h5", {"model": {"w": torch.tensor([1.0, float("nan")])}}, {"step": 1})
    assert list(tmp_path.iterdir()) == []


# -- crafted checkpoints ---------------------------------------------------------------------------------

def _set_attr(name, value):
    return lambda f: f.attrs.__setitem__(name, value)


def _del_attr(name):
    return lambda f: f.attrs.__delitem__(name)


def _replace(key, data, torch_dtype=None, **kwargs):
    def edit(f):
        old_dtype = f["tensors"][key].attrs.get("torch_dtype")
        del f["tensors"][key]
        ds = f["tensors"].create_dataset(key, data=data, **kwargs)
        if torch_dtype or old_dtype:
            ds.attrs["torch_dtype"] = torch_dtype or old_dtype
    return edit


def _external(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(256, dtype=np.float32).tobytes())

    def edit(f):
        shape = f["tensors/model/w0"].shape
        del f["tensors/model/w0"]
        ds = f["tensors"].create_dataset("model/w0", shape=shape, dtype="float32",
                                         external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
        ds.attrs["torch_dtype"] = "float32"
    return edit


def _virtual(f):
    shape = f["tensors/model/w0"].shape
    layout = h5py.VirtualLayout(shape=shape, dtype="float32")
    layout[...] = h5py.VirtualSource("other.h5", "x", shape=shape)
    del f["tensors/model/w0"]
    f["tensors/model"].create_virtual_dataset("w0", layout)


def _link(kind):
    def edit(f):
        del f["tensors/model/b0"]
        f["tensors/model/b0"] = (h5py.SoftLink("/tensors/model/b1") if kind == "soft"
                                          else h5py.ExternalLink("/etc/hostname", "/x"))
    return edit


def _first_weight(f):
    return f["tensors/model/w0"][()]


def corpus(tmp_path: Path) -> dict[str, object]:
    """Name -> an edit of a good checkpoint (a callable on the open h5py file) or raw file bytes."""
    w = np.zeros((2, 4, 64), dtype=np.float32)
    nan = w.copy()
    nan[1, 3, 1] = np.nan
    inf = w.copy()
    inf[0, 0, 0] = np.inf
    return {
        "not hdf5": b"this is not an HDF5 file at all",
        "empty file": b"",
        "truncated": "truncate",
        "wrong format": _set_attr("format", "something-else"),
        "newer format version": _set_attr("format_version", 99),
        "missing config": _del_attr("config"),
        "config not toml": _set_attr("config", "algo = [unclosed"),
        "config an integer": _set_attr("config", 5),
        "config with an unknown key": _set_attr("config", 'algo = "ppo"\n[ppo]\nno_such_key = 1\n'),
        "missing step": _del_attr("step"),
        "non-integer step": _set_attr("step", "abc"),
        "float step": _set_attr("step", 1.5),
        "negative step": _set_attr("step", -4),
        "missing algo": _del_attr("algo"),
        "unknown algo": _set_attr("algo", "nope"),
        "shape mismatch": _replace("model/w0", np.zeros((2, 5, 64), np.float32)),
        "missing model tensor": lambda f: f["tensors/model"].__delitem__("b0"),
        "extra model tensor": lambda f: f["tensors/model"].create_dataset("extra", data=np.zeros(3, np.float32)),
        "string tensor": _replace("model/w0", "a string"),
        "int32 tensor": _replace("model/w0", w.astype(np.int32), torch_dtype="int32"),
        "unknown torch_dtype": _replace("model/w0", w, torch_dtype="float1024"),
        "torch_dtype disagrees with the data": _replace("model/w0", w, torch_dtype="int64"),
        "huge declared shape": _replace("model/w0", None, shape=(2, 4, 10**12), dtype="float32",
                                        chunks=(1, 1, 1024)),
        "external storage": _external(tmp_path),
        "virtual dataset": _virtual,
        "soft link": _link("soft"),
        "external link": _link("external"),
        "NaN weights": _replace("model/w0", nan),
        "Inf weights": _replace("model/w0", inf),
        "json not json": lambda f: (f["json"].__delitem__("counters"),
                                    f["json"].create_dataset("counters", data="{not json")),
        "no tensors group": lambda f: f.__delitem__("tensors"),
    }


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("good")
    result = rlcli.train(fast_config(root, 256, "good"))
    return result.run_dir


def make_crafted(good_run: Path, folder: Path, name: str, edit) -> Path:
    path = folder / (name.replace(" ", "_") + ".h5")
    data = (good_run / "checkpoints" / "last.h5").read_bytes()
    if isinstance(edit, bytes):
        path.write_bytes(edit)
    elif edit == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(data)
        with h5py.File(path, "a") as f:
            edit(f)
    return path


def test_crafted_checkpoints_exit_2_with_one_line(good_run, tmp_path, capsys):
    cases = corpus(tmp_path)
    assert len(cases) >= 23
    silent = []
    for name, edit in cases.items():
        path = make_crafted(good_run, tmp_path, name, edit)
        before = digest(path)
        rc, err = cli_in_process(capsys, "eval", str(path), "-n", "1")
        if rc != 2:
            silent.append((name, rc, err))
            continue
        assert_one_line(err, path.name)
        assert digest(path) == before
    assert not silent, silent


def test_resume_from_a_crafted_checkpoint_changes_nothing(good_run, tmp_path, capsys):
    import shutil

    for name in ("shape mismatch", "external storage", "NaN weights", "huge declared shape"):
        run = tmp_path / name.replace(" ", "_")
        shutil.copytree(good_run, run)
        (run / "checkpoints" / "last.h5").unlink()
        crafted = make_crafted(good_run, tmp_path, name, corpus(tmp_path)[name])
        os.replace(crafted, run / "checkpoints" / "last.h5")
        before = folder_digest(run)
        rc, err = cli_in_process(capsys, "train", "--resume", str(run), "--steps", "1024", "-q")
        assert rc == 2, (name, err)
        assert_one_line(err, "last.h5")
        after = folder_digest(run)
        after.pop(".lock", None)
        before.pop(".lock", None)
        assert after == before, f"{name}: resume changed files"


# -- kill -9 and SIGINT ---------------------------------------------------------------------------------------

def _train_child(cfg, resume) -> None:
    torch.set_num_threads(1)
    try:
        rlcli.train(cfg, resume=resume)
    except TrainingInterrupted:
        os._exit(2)
    os._exit(0)


def kill_trial(tmp_path: Path, name: str, delay: float, steps: int = 2048) -> tuple[int, int]:
    """Start a run, kill -9 it after ``delay`` s, check the folder; returns (step reached in the metrics,
    step of the last checkpoint), -1 where there is none."""
    cfg = fast_config(tmp_path, steps, name)
    run = tmp_path / "runs" / name
    resume = str(run) if (run / "config.toml").exists() else None
    proc = multiprocessing.get_context("fork").Process(target=_train_child, args=(cfg, resume))
    proc.start()
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    metrics = read_metrics(run / "metrics.h5")  # always readable
    reached = int(metric_steps_once(metrics)[-1]) if "steps_per_second" in metrics else -1
    last = run / "checkpoints" / "last.h5"
    saved = int(load_checkpoint(last).attrs["step"]) if last.exists() else -1  # every latest checkpoint loads
    return reached, saved


def test_kill_9_at_random_moments(tmp_path):
    rng = random.Random(0)
    losses = []
    for trial in range(3):
        name = f"k{trial}"
        for _ in range(2):  # kill, resume and kill again
            reached, saved = kill_trial(tmp_path, name, rng.uniform(0.2, 1.5))
            if saved >= 0:
                losses.append(reached - saved)
        rlcli.train(fast_config(tmp_path, 2048, name), resume=tmp_path / "runs" / name)
        steps = metric_steps_once(read_metrics(tmp_path / "runs" / name / "metrics.h5"))
        assert steps[-1] == 2048 and len(steps) == 2048 // 128, steps
        assert not list((tmp_path / "runs" / name).rglob("*.tmp")), "the resume removed what a kill left"
    # a kill loses at most the steps since the last checkpoint (checkpoint_every=128, one iteration)
    assert all(loss <= 128 for loss in losses), losses


def test_sigint_while_training_saves_and_exit_2(tmp_path):
    cfg = fast_config(tmp_path, 10**6, "int")
    proc = multiprocessing.get_context("fork").Process(target=_train_child, args=(cfg, None))
    proc.start()
    run = tmp_path / "runs" / "int"
    deadline = time.monotonic() + 60
    while not (run / "checkpoints" / "last.h5").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    proc.join(60)
    assert proc.exitcode == 2
    step = load_checkpoint(run / "checkpoints" / "last.h5").attrs["step"]
    assert metric_steps_once(read_metrics(run / "metrics.h5"))[-1] >= step


def _reached(pid: int, phase: str, run: Path) -> bool:
    if phase == "imports":  # the train command is importing torch (rlcli's own code runs: Python is up)
        with contextlib.suppress(OSError):
            return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
        return False
    return (run / ".lock").exists()  # building the run: envs, networks


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see the phase")
@pytest.mark.parametrize("phase", ["imports", "setup"])
def test_sigint_at_start_up_is_one_line(tmp_path, phase):
    """Ctrl-C while rlcli imports and while it builds the run: one line, exit 2, and the run can be
    started again under its name."""
    args = ["train", "ppo", "--env", "cartpole", "--steps", "100000", "-q", "--runs-dir", str(tmp_path),
            "--name", "s", *[f"--set={s}" for s in FAST]]
    proc = subprocess.Popen([sys.executable, "-m", "rlcli.cli.main", *args], cwd=REPO, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    run = tmp_path / "s"
    deadline = time.monotonic() + 60
    while not _reached(proc.pid, phase, run) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert_one_line(err, "interrupted")
    if (run / "checkpoints" / "last.h5").exists():
        load_checkpoint(run / "checkpoints" / "last.h5")
    else:  # stopped before its first checkpoint: it can be started again under its name
        rlcli.train(fast_config(tmp_path.parent, 128, "s", f"run.runs_dir={tmp_path}"))
    assert not list(tmp_path.rglob("*.tmp"))


# -- one writer per run folder, no writes outside it ------------------------------------------------------------

def test_a_second_writer_exits_2_naming_the_holder(tmp_path, capsys):
    cfg = fast_config(tmp_path, 256, "same")
    with RunLock(tmp_path / "runs" / "same"):
        with pytest.raises(ConfigError, match=f"in use by process {os.getpid()}"):
            rlcli.train(cfg)
    rlcli.train(cfg)  # the lock died with its holder


def test_two_processes_same_name(tmp_path):
    args = ["train", "ppo", "--env", "cartpole", "--steps", "1024", "-q", "--runs-dir", str(tmp_path),
            "--name", "same", "--set", "run.seed=SEED", *[f"--set={s}" for s in FAST]]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "rlcli.cli.main",
                               *[a.replace("SEED", str(seed)) for a in args]], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    results = [(p.wait(180), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    refused = next(err for rc, err in results if rc == 2)
    # "in use": it came while the other was running; "already exists": on a loaded machine it started only
    # after the other had finished its run (the folder then holds a finished run, never resumed by accident)
    assert_one_line(refused)
    assert "in use by process" in refused or "already exists" in refused, refused
    steps = metric_steps_once(read_metrics(tmp_path / "same" / "metrics.h5"))
    assert steps[-1] == 1024


@pytest.mark.parametrize("name", ["../../escaped", "/abs/path", "a/b", "..", "."])
def test_run_names_cannot_escape_runs_dir(tmp_path, capsys, name):
    runs = tmp_path / "deep" / "runs"
    rc, err = cli_in_process(capsys, "train", "ppo", "--env", "cartpole", "--steps", "128", "-q",
                             "--runs-dir", str(runs), "--name", name)
    assert rc == 2
    assert_one_line(err, "single folder name")
    assert not tmp_path.joinpath("escaped").exists() and not list(tmp_path.rglob("config.toml"))


def test_symlinks_in_a_run_folder_are_not_written_through(good_run, tmp_path, capsys):
    import shutil

    target = tmp_path / "victim.txt"
    target.write_text("precious")
    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    (run / "metrics.h5").unlink()
    (run / "metrics.h5").symlink_to(target)
    (run / ".config.toml.tmp").symlink_to(target)  # the fixed temporary name of older versions
    rc, err = cli_in_process(capsys, "train", "--resume", str(run), "--steps", "512", "-q")
    assert rc == 2
    assert_one_line(err, "symbolic link")
    assert target.read_text() == "precious"


def test_runs_dir_and_report_out_that_are_files(tmp_path, capsys, good_run):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    rc, err = cli_in_process(capsys, "train", "ppo", "--env", "cartpole", "--steps", "128", "-q",
                             "--runs-dir", str(a_file))
    assert rc == 2
    assert_one_line(err, "is a file")
    rc, err = cli_in_process(capsys, "report", str(good_run), "--out", str(a_file))
    assert rc == 2
    assert_one_line(err, "is a file")
    assert a_file.read_text() == "x"


# -- full disk, denied permission -----------------------------------------------------------------------

def _small_tmpfs(path: Path, size_kb: int) -> bool:
    """Mount a tmpfs of ``size_kb`` at ``path`` where this process may (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0:
        return False
    path.mkdir()
    rc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                        capture_output=True).returncode
    return rc == 0


def _file_size_limit(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_disk_full_is_one_line_exit_1_and_keeps_the_checkpoint(good_run, tmp_path):
    import shutil

    mount = tmp_path / "small"
    mounted = _small_tmpfs(mount, 1024)
    try:
        base = mount if mounted else tmp_path
        run = base / "run"
        shutil.copytree(good_run, run)
        last = run / "checkpoints" / "last.h5"
        before = digest(last)
        preexec = None
        if mounted:  # fill the disk, leaving less than a checkpoint
            free = shutil.disk_usage(mount).free
            with open(mount / "filler", "wb") as fh:
                with contextlib.suppress(OSError):
                    fh.write(b"\0" * max(0, free - 8 * 1024))
        else:
            preexec = _file_size_limit(last.stat().st_size // 2)
        proc = subprocess.run([sys.executable, "-m", "rlcli.cli.main", "train", "--resume", str(run), "--steps",
                               "1024", "-q"], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=preexec)
        assert proc.returncode == 1, proc.stderr
        assert_one_line(proc.stderr, "disk full writing" if mounted else "file size limit reached writing",
                        str(run))
        assert digest(last) == before
        assert not list(run.rglob("*.tmp")), "no temporary file is left behind"
        load_checkpoint(last)
        read_metrics(run / "metrics.h5")
    finally:
        if mounted:
            subprocess.run(["umount", str(mount)], check=False)


def _drop_dac_override() -> None:
    """In a child of root: lose CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH at exec, so file modes apply."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP


def test_permission_denied_is_said_as_such(good_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    preexec = _drop_dac_override if os.geteuid() == 0 else None
    ckpt = run / "checkpoints" / "last.h5"
    before = folder_digest(run)
    os.chmod(run, 0o555)  # the run folder: nothing can be created in it
    try:
        proc = subprocess.run([sys.executable, "-m", "rlcli.cli.main", "train", "--resume", str(run), "--steps",
                               "1024", "-q"], cwd=REPO, capture_output=True, text=True, timeout=120, env=env,
                              preexec_fn=preexec)
        assert proc.returncode == 1, proc.stderr
        assert_one_line(proc.stderr, "permission denied writing", str(run))
        os.chmod(run, 0o755)
        os.chmod(ckpt, 0o000)  # a checkpoint that may not be read
        proc = subprocess.run([sys.executable, "-m", "rlcli.cli.main", "eval", str(ckpt), "-n", "1"], cwd=REPO,
                              capture_output=True, text=True, timeout=120, env=env, preexec_fn=preexec)
        assert proc.returncode == 2, proc.stderr
        assert_one_line(proc.stderr, "permission denied", str(ckpt))
        assert "corrupt" not in proc.stderr
    finally:
        os.chmod(run, 0o755)
        os.chmod(ckpt, 0o644)
    after = folder_digest(run)
    assert {k: v for k, v in after.items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}


# -- smaller cases ---------------------------------------------------------------------------------------

def test_one_dimensional_metrics_dataset_is_exit_2(good_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    with h5py.File(run / "metrics.h5", "a") as f:
        f.create_dataset("flat", data=np.arange(5.0))
    rc, err = cli_in_process(capsys, "report", str(run), "--out", str(tmp_path / "rep"))
    assert rc == 2
    assert_one_line(err, "metric 'flat'")


def test_total_steps_is_capped(tmp_path, capsys):
    rc, err = cli_in_process(capsys, "train", "ppo", "--env", "cartpole", "--runs-dir", str(tmp_path), "--set",
                             "run.total_steps=1e30", "--dry-run")
    assert rc == 2
    assert_one_line(err, "total_steps")


def test_a_run_killed_before_its_first_checkpoint_can_be_rerun_or_resumed(tmp_path):
    cfg = fast_config(tmp_path, 256, "early")
    run = tmp_path / "runs" / "early"
    run.mkdir(parents=True)
    (run / "config.toml").write_text(cfg.to_toml())
    (run / "metrics.h5").write_bytes(b"")  # whatever the killed run left
    rlcli.train(fast_config(tmp_path, 256, "early"))  # rerun under its name
    shutil_rm = run / "checkpoints"
    for p in shutil_rm.iterdir():
        p.unlink()
    rlcli.train(fast_config(tmp_path, 256, "early"), resume=run)  # or resumed: starts from step 0
    assert metric_steps_once(read_metrics(run / "metrics.h5"))[-1] == 256
