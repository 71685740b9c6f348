"""The Typer application and the error convention every subcommand shares.

Subcommand modules (``rlcli/cli/<command>.py``) import ``app`` from here and decorate one function each.
They stay thin: parse -> config -> one library call -> rich output. Errors: library code raises
``ConfigError`` (or another :data:`USER_ERRORS` type) for bad input -> one line, exit 2; ``RunFailed`` for a
failed run -> exit 1. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="rlcli",
    help="Train, compare and distill reinforcement-learning agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

state = {"debug": False}


class RunFailed(RuntimeError):
    """The work itself failed (diverged, environment crashed): exit code 1."""


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    state["debug"] = debug


def exit_interrupted(result, resume_command: str) -> None:
    """After Ctrl-C saved a checkpoint: say where and how to continue, then exit 2."""
    import sys

    print(f"rlcli: interrupted at step {result.steps}; checkpoint saved in {result.run_dir}; continue with: "
          f"{resume_command}", file=sys.stderr)
    raise typer.Exit(2)
