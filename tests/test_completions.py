"""Shell completion: the shipped scripts match the app, and the real process completes subcommands."""

from __future__ import annotations

from conftest import REPO, run_cli

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
