"""Entry point of the ``rlcli`` console script: registers the subcommands and maps errors to exit codes."""

from __future__ import annotations

import os
import signal
import sys
import threading


def _interrupted(signum, frame) -> None:
    """Ctrl-C outside the training loop (starting up, building the run) or a second one inside it: one line,
    exit 2 at once. An exception raised here could land in a callback that ignores it (an import's module
    lock) and the process would go on, so it exits directly: every file rlcli writes is renamed into place
    whole, the OS drops the run lock, and the next writer removes a temporary file a write left behind."""
    sys.stdout.flush()
    print("rlcli: interrupted", file=sys.stderr, flush=True)
    os._exit(2)


def _on_sigint(handler) -> None:
    if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
        signal.signal(signal.SIGINT, handler)


_on_sigint(_interrupted)  # first thing: the imports below take a while

from rlcli.cli.app import RunFailed, app, state  # noqa: E402

# each module registers its subcommand on `app` (modules import heavy packages lazily, inside functions)
SUBCOMMAND_MODULES = ["train", "collect", "distill", "eval", "profile", "report"]
MULTI_VALUE_OPTIONS = {"--seeds"}  # `--seeds 0 1 2` is accepted as well as `--seeds 0 --seeds 1 ...`


def _register() -> None:
    import importlib

    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"rlcli.cli.{name}")
    importlib.import_module("rlcli.cli.completion")  # `--install-completion` installs rlcli's bash script


def expand_multi_value(argv: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        out.append(arg)
        i += 1
        if arg in MULTI_VALUE_OPTIONS:
            first = True
            while i < len(argv) and not argv[i].startswith("-"):
                if not first:
                    out.append(arg)
                out.append(argv[i])
                first = False
                i += 1
    return out


def _complete_without_coercion() -> None:
    """Completion only reads the words typed so far as strings; Typer 0.29 would build a pydantic TypeAdapter
    per option to coerce them (pydantic's import alone is ~0.15 s of a TAB), so completion skips it."""
    import typer.core
    from typer._coercion import PassThroughRuntimeParam

    class RawValue(PassThroughRuntimeParam):
        def _coerce_value(self, value, param, ctx):
            return value

    typer.core.build_runtime_param = lambda d: RawValue(annotation=d.annotation, parameter_info=d.parameter_info)


def main(argv: list[str] | None = None) -> None:
    _on_sigint(_interrupted)
    try:
        _main(argv)
    finally:
        _on_sigint(signal.default_int_handler)


def _main(argv: list[str] | None) -> None:
    import os

    from rlcli.config.fields import ConfigError

    if os.environ.get("_RLCLI_COMPLETE", "").startswith("complete_"):
        _complete_without_coercion()
    _register()
    args = expand_multi_value(list(sys.argv[1:] if argv is None else argv))
    from rlcli.storage.errors import CorruptFileError, RunStoppedError

    user_errors: tuple[type[BaseException], ...] = (ConfigError, FileNotFoundError, CorruptFileError)
    run_errors: tuple[type[BaseException], ...] = (RunFailed, RunStoppedError)  # diverged, disk full: exit 1
    try:
        app(args=args, prog_name="rlcli", standalone_mode=True)
    except SystemExit:
        raise
    except user_errors as e:
        if state["debug"]:
            raise
        print(f"rlcli: error: {e}", file=sys.stderr)
        sys.exit(2)
    except run_errors as e:
        if state["debug"]:
            raise
        print(f"rlcli: run failed: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("rlcli: interrupted", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - an unexpected failure of the work itself
        if state["debug"]:
            raise
        print(f"rlcli: run failed: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
