"""The Typer application and the error convention every subcommand shares.

Subcommand modules (``rlcli/cli/<command>.py``) import ``app`` from here and decorate one function each.
They stay thin: parse -> config -> one library call -> rich output. Errors: library code raises
``ConfigError`` (or another :data:`USER_ERRORS` type) for bad input -> one line, exit 2; ``RunFailed`` for a
failed run -> exit 1. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import typer
import typer.core

app = typer.Typer(
    name="rlcli",  # the help text is _root's docstring
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

state = {"debug": False}

_option_type = typer.core.TyperOption.display_type_rich


def _flag_type(self: typer.core.TyperOption, ctx) -> str | None:
    # Typer 0.29 shows a boolean flag as `--dry-run <bool>`, as if it took a value; a flag has no type to show
    return None if self.is_flag else _option_type(self, ctx)


typer.core.TyperOption.display_type_rich = _flag_type


class RunFailed(RuntimeError):
    """The work itself failed (diverged, environment crashed): exit code 1."""


def _print_version(value: bool) -> None:
    if value:
        from rlcli import __version__

        print(f"rlcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
          version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print the version and exit.")) -> None:
    """Train, compare and distill reinforcement-learning agents.

    Example: [bold]rlcli train ppo --env cartpole --seeds 0 1 2[/bold], then [bold]rlcli report runs/[/bold]
    """
    state["debug"] = debug


def exit_interrupted(result, resume_command: str) -> None:
    """After Ctrl-C saved a checkpoint: say where and how to continue, then exit 2."""
    import sys

    print(f"rlcli: interrupted at step {result.steps}; checkpoint saved in {result.run_dir}; continue with: "
          f"{resume_command}", file=sys.stderr)
    raise typer.Exit(2)


def refuse(flags: dict[str, object], why: str) -> None:
    """ConfigError naming the given flags among ``flags`` (name -> value, None/False/[] = not given): each
    would be ignored ``why``."""
    from rlcli.config.fields import ConfigError

    given = [name for name, value in flags.items() if value not in (None, False, [], ())]
    if given:
        raise ConfigError(f"{', '.join(given)} {'has' if len(given) == 1 else 'have'} no effect {why}; drop "
                          f"{'it' if len(given) == 1 else 'them'}")
