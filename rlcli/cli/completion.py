"""The shell-completion scripts shipped in ``completions/``, generated from the Typer app itself.

``python -m rlcli.cli.completion completions/`` rewrites them; a test checks the shipped files equal what
this module generates, so they never drift from the app. The values offered (algorithms, envs, ``--set``
keys, run folders, ...) come from :mod:`rlcli.cli.values` at TAB time.

Bash gets its own script (also what ``rlcli --install-completion`` installs): bash splits the word under
the cursor at ``:`` and ``=`` (COMP_WORDBREAKS), so Typer's script would send ``atari : Po`` for
``atari:Po``. This one sends the line split at blanks only, and trims from each reply the part of the
word that bash keeps before its own word, as bash-completion's ``__ltrim_colon_completions`` does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer._completion_shared as typer_completion

SHELLS = {"bash": "rlcli.bash", "zsh": "_rlcli", "fish": "rlcli.fish"}
COMPLETE_VAR = "_RLCLI_COMPLETE"  # click's convention: _<PROG>_COMPLETE

BASH_SCRIPT = r"""
%(complete_func)s() {
    local IFS=$'\n'
    local line="${COMP_LINE:0:COMP_POINT}"
    local words
    IFS=$' \t\n' read -r -a words <<< "$line"
    [[ "$line" =~ [[:space:]]$ ]] && words+=("")
    local cword=$(( ${#words[@]} - 1 ))
    # bash's current word is the tail of the typed word after its last ':' or '='
    local kept="${words[cword]%%"${COMP_WORDS[COMP_CWORD]}"}"
    local replies
    replies=( $( env COMP_WORDS="${words[*]}" \
                     COMP_CWORD=$cword \
                     %(autocomplete_var)s=complete_bash $1 ) )
    COMPREPLY=( "${replies[@]#"$kept"}" )
    # a key waiting for its value (ppo.lr=) takes no space after it
    [[ ${#COMPREPLY[@]} -eq 1 && "${COMPREPLY[0]}" == *= ]] && compopt -o nospace
    return 0
}

complete -o default -F %(complete_func)s %(prog_name)s
"""

typer_completion._completion_scripts["bash"] = BASH_SCRIPT


def completion_script(shell: str) -> str:
    return typer_completion.get_completion_script(prog_name="rlcli", complete_var=COMPLETE_VAR, shell=shell)


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
