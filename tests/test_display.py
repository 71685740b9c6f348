"""What a user sees in the terminal, through the real process: the live display in a pseudo-terminal of a
given width (bar and ``step/total`` stay at 80 columns, the counter never passes the total, setup is no
phase share), progress of evaluations and studies, and no third-party banners on stderr."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

from conftest import REPO, rlcli_command, run_cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(*args: str, columns: int = 80, timeout: float = 300) -> tuple[int, str]:
    """Run ``rlcli ARGS`` with stdin, stdout and stderr on a pseudo-terminal ``columns`` wide; returns
    (exit code, everything it wrote with the ANSI control sequences removed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen(rlcli_command() + list(args), stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=REPO, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    return rc, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def frames(text: str) -> list[str]:
    """The lines and live-display redraws (carriage returns) of a terminal's output."""
    return [f for f in re.split(r"[\r\n]+", text) if f.strip()]


def test_live_display_at_80_columns_keeps_the_bar_and_the_counter_within_the_total(tmp_path):
    # PPO on CartPole takes 512 env steps per iteration, so the last iteration ends at 1024 > 1000
    rc, out = run_in_terminal("train", "ppo", "--env", "cartpole", "--steps", "1000", "--runs-dir", str(tmp_path),
                              "--name", "r80", "--set", "run.eval_episodes=2", columns=80)
    assert rc == 0, out
    assert f"run folder {tmp_path / 'r80'}" in out.replace("\n", "")
    live = [f for f in frames(out) if f.startswith("train ")]
    assert live, out
    for frame in live:
        assert len(frame) <= 80, frame
        assert "━" in frame and re.search(r"\b\d+/1000\b", frame), frame
    counts = [int(n) for n in re.findall(r"\b(\d+)/1000\b", out)]
    assert max(counts) == 1000 and "1024/1000" not in out
    assert "steps/s" in live[-1] and "return" in live[-1]
    assert "done: 1024 steps" in out  # the summary keeps the true count

    rc, wide = run_in_terminal("train", "ppo", "--env", "cartpole", "--steps", "1024", "--runs-dir", str(tmp_path),
                               "--name", "r200", "--set", "run.eval_episodes=2", columns=200)
    assert rc == 0, wide
    last = [f for f in frames(wide) if f.startswith("train ")][-1]
    assert "learning" in last and "env" in last, last  # the phase shares, when there is room
    assert "setup" not in wide


def test_plain_progress_lines_print_the_run_folder_and_stay_within_the_total(tmp_path):
    res = run_cli("train", "ppo", "--env", "cartpole", "--steps", "1000", "--runs-dir", str(tmp_path), "--name", "p",
                  "--set", "run.eval_episodes=2", check_rc=0)
    assert res.stderr.splitlines()[0] == f"run folder {tmp_path / 'p'}"
    assert "step 1000/1000" in res.stderr and "step 1024/" not in res.stderr
    assert "setup" not in res.stderr


def test_fit_parts_keeps_whole_parts_from_the_front():
    from rlcli.cli.display import fit_parts

    parts = ["1234 steps/s", "return 22.5", "ETA 00:10", "[dim]env 50%[/dim]"]
    assert fit_parts(parts, 100) == "1234 steps/s  return 22.5  ETA 00:10  [dim]env 50%[/dim]"
    assert fit_parts(parts, len("1234 steps/s  return 22.5  ETA 00:10  env 50%")) == fit_parts(parts, 100)
    assert fit_parts(parts, len("1234 steps/s  return 22.5") + 3) == "1234 steps/s  return 22.5"
    assert fit_parts(parts, 5) == ""


def test_eval_and_shift_evaluation_show_progress(tmp_path):
    import rlcli

    cfg = rlcli.resolve_config("ppo", env="cartpole", extra={"run": {
        "total_steps": 512, "eval_episodes": 2, "runs_dir": str(tmp_path), "name": "run"}})
    rlcli.train(cfg)
    rc, out = run_in_terminal("eval", str(tmp_path / "run"), "-n", "4")
    assert rc == 0, out
    assert re.search(r"eval episodes ━+ 4/4", out), out
    assert "4 deterministic episodes" in out
    rc, out = run_in_terminal("eval", str(tmp_path / "run"), "-n", "3", "--shift", "0,1")
    assert rc == 0, out
    assert re.search(r"shift episodes ━+ 6/6 .*level 1 \(2 of 2\)", out), out
    assert "GRS" in out


def test_study_progress_reads_how_far_each_running_run_is(tmp_path):
    """The study's note comes from the progress lines the worker writes into each run's log."""
    from rlcli.engine.progress import PlainReporter, Progress
    from rlcli.study.runner import running_note

    log = tmp_path / "a.log"
    with open(log, "w") as stream:
        reporter = PlainReporter(interval=0.0, stream=stream)
        reporter.start(str(tmp_path / "a"), 0, 4000)
        for step in (1000, 3000):
            reporter.update(Progress(step, 4000, 100.0, None, 1.0))
    assert running_note({"a": log, "b": tmp_path / "b.log"}) == "running: 75% start  a  b"
    with open(log, "a") as stream:
        PlainReporter(interval=0.0, stream=stream).update(Progress(4096, 4000, 100.0, None, 1.0))
    assert running_note({"a": log}) == "running: eval  a"  # trained: its shift evaluation runs
    assert running_note({}) == ""


def test_procgen_import_prints_no_gym_banner():
    code = "from rlcli.envs.procgen import _gym3_env; _gym3_env(1, 0.0, 0)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr
    assert res.stderr == "" and res.stdout == ""


def test_config_options_show_whole_key_names_at_80_columns():
    from rlcli.config.schema import describe_options

    for args, target in ((["train", "ppo"], "ppo"), (["collect", "--out", "x.h5"], "ad")):
        res = run_cli(*args, "--config-options", env={"COLUMNS": "80"}, check_rc=0)
        lines = res.stdout.splitlines()
        assert max(len(line) for line in lines) <= 80
        for key, *_ in describe_options(target):
            assert any(f"│ {key} " in line for line in lines), key
