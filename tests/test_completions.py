"""Shell completion: the shipped scripts match the app, and the real process completes subcommands."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, rlcli_command, run_cli

from rlcli.cli.completion import SHELLS, completion_script


def test_shipped_scripts_are_in_step_with_the_app():
    for shell, filename in SHELLS.items():
        shipped = (REPO / "completions" / filename).read_text()
        assert shipped == completion_script(shell), (
            f"completions/{filename} is stale: regenerate with `python -m rlcli.cli.completion completions`")


def test_bash_completion_lists_subcommands_and_options():
    proc = run_cli(env={"_RLCLI_COMPLETE": "complete_bash", "COMP_WORDS": "rlcli ", "COMP_CWORD": "1"},
                   check_rc=0)
    words = proc.stdout.split()
    assert {"train", "eval", "profile"} <= set(words), proc.stdout
    proc = run_cli(env={"_RLCLI_COMPLETE": "complete_bash", "COMP_WORDS": "rlcli train --ste", "COMP_CWORD": "2"},
                   check_rc=0)
    assert "--steps" in proc.stdout.split()


def test_install_completion_writes_the_bash_script(tmp_path):
    run_cli("--install-completion", env={"HOME": str(tmp_path), "SHELL": "/bin/bash"}, check_rc=0)
    installed = (tmp_path / ".bash_completions" / "rlcli.sh").read_text()
    assert "_RLCLI_COMPLETE" in installed
    assert "rlcli.sh" in (tmp_path / ".bashrc").read_text()


def bash_complete(line: str, cwd=None) -> list[str]:
    """What bash completes for ``line`` (cursor at its end) with the shipped completions/rlcli.bash: the words
    are split as bash splits them (COMP_WORDBREAKS: blanks, ':' and '='); each reply is returned as the whole
    word the command line then holds (bash's current word replaced by the reply)."""
    words = re.findall(r"[^\s:=]+|[:=]", line) + ([""] if line.endswith(" ") else [])
    cur = words[-1]
    script = (f"source {REPO / 'completions' / 'rlcli.bash'}\n"
              f"COMP_LINE={shlex.quote(line)}; COMP_POINT={len(line)}\n"
              f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
              "_rlcli_completion rlcli\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    bin_dir = Path(rlcli_command()[0]).parent if len(rlcli_command()) == 1 else None
    path = f"{bin_dir}:{os.environ['PATH']}" if bin_dir else os.environ["PATH"]
    proc = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO), "PATH": path})
    assert proc.returncode == 0, proc.stderr
    typed = line.split()[-1] if not line.endswith(" ") else ""
    kept = typed[: len(typed) - len(cur)]
    return [kept + reply for reply in proc.stdout.splitlines() if reply]


@pytest.mark.skipif(len(rlcli_command()) != 1, reason="needs the installed rlcli console script on PATH")
def test_real_bash_completes_every_kind_of_value(tmp_path):
    from rlcli import registry

    assert bash_complete("rlcli train ") == [s.name for s in registry.algorithms("train")]
    assert bash_complete("rlcli train ppo --env cart") == ["cartpole"]
    assert bash_complete("rlcli train ppo --env atari:Po") == ["atari:Pong", "atari:Pooyan"]
    assert "atari:MontezumaRevenge" in bash_complete("rlcli train ppo --env atari:")
    assert bash_complete("rlcli train es --technique ") == ["baseline", "reg"]
    assert bash_complete("rlcli train rnd --technique ") == ["baseline"]
    assert bash_complete("rlcli train ppo --technique gar") == ["gar", "gar+reg"]
    assert bash_complete("rlcli train dqn --policy ") == ["mlp", "cnn"]
    assert bash_complete("rlcli train ppo --policy vit-e") == ["vit-explorative"]
    assert "ppo-cartpole" in bash_complete("rlcli train ppo --preset ppo-")
    assert bash_complete("rlcli train ppo --set ppo.learning_r") == ["ppo.learning_rate="]
    assert bash_complete("rlcli train ppo --set ppo.anneal_lr=") == ["ppo.anneal_lr=true", "ppo.anneal_lr=false"]
    assert bash_complete("rlcli train ppo --set policy.activation=r") == ["policy.activation=relu"]
    assert bash_complete("rlcli train ppo --set env.id=atari:Pon") == ["env.id=atari:Pong"]
    assert "collect.histories_per_task=" in bash_complete("rlcli collect --set collect.hist")
    run = tmp_path / "runs" / "r1"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("checkpoints/last.h5", "checkpoints/best.h5", "checkpoints/step-1000.h5"):
        (run / name).touch()
    (run / "config.toml").write_text('algo = "dqn"\n')
    assert "runs/r1" in bash_complete("rlcli eval ", cwd=tmp_path)
    assert bash_complete("rlcli eval runs/r1 --checkpoint ", cwd=tmp_path) == [
        "last", "best", "runs/r1/checkpoints/step-1000.h5"]
    assert "runs/r1" in bash_complete("rlcli train ppo --resume ru", cwd=tmp_path)
    assert bash_complete("rlcli eval runs/r1 --set dqn.n_", cwd=tmp_path) == ["dqn.n_step="]  # the run's algo


def test_zsh_and_fish_get_the_same_values():
    for shell, extra in (("zsh", {}), ("fish", {"_TYPER_COMPLETE_FISH_ACTION": "get-args"})):
        proc = run_cli(env={"_RLCLI_COMPLETE": f"complete_{shell}", **extra,
                            "_TYPER_COMPLETE_ARGS": "rlcli train ppo --env atari:Pon"}, check_rc=0)
        assert "Pong" in proc.stdout and "Pooyan" not in proc.stdout, proc.stdout


def test_completion_imports_neither_torch_nor_numpy_nor_an_env():
    """A TAB must answer fast: the completion path never imports torch, numpy, gymnasium or an env package."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "rlcli.cli.main"], capture_output=True,
                          text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), "_RLCLI_COMPLETE": "complete_bash",
                               "COMP_WORDS": "rlcli train ppo --env atari:", "COMP_CWORD": "4"})
    assert "atari:Pong" in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "numpy", "gymnasium", "ale_py", "h5py"}, sorted(imported)
