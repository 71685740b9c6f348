"""The shell-completion scripts shipped in ``completions/``, generated from the Typer app itself.

``python -m rlcli.cli.completion completions/`` rewrites them; a test checks the shipped files equal what
this module generates, so they never drift from the app.
"""

from __future__ import annotations

import sys
from pathlib import Path

SHELLS = {"bash": "rlcli.bash", "zsh": "_rlcli", "fish": "rlcli.fish"}
COMPLETE_VAR = "_RLCLI_COMPLETE"  # click's convention: _<PROG>_COMPLETE


def completion_script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="rlcli", complete_var=COMPLETE_VAR, shell=shell)


def write_scripts(out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for shell, filename in SHELLS.items():
        path = out_dir / filename
        path.write_text(completion_script(shell))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_scripts(sys.argv[1] if len(sys.argv) > 1 else "completions"):
        print(p)
