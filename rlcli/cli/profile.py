"""``rlcli profile train ALGO ...``: run a training command line and show where the time goes."""

from __future__ import annotations

import typer

from rlcli.cli.app import app, refuse

PROFILED_COMMANDS = ("train",)


def train_params(ctx: typer.Context, args: list[str]) -> dict:
    """Parse a ``train`` command line exactly as ``rlcli train`` would (same options, same usage errors)."""
    root = ctx.find_root()
    command = root.command.get_command(root, "train")
    return command.make_context("train", list(args), parent=root).params


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def profile(
    ctx: typer.Context,
    trace: str = typer.Option(None, "--trace", help="Write a torch.profiler trace (TensorBoard/Chrome) to DIR."),
    keep_run: bool = typer.Option(False, "--keep-run", help="Keep the run folder (default: a temporary one)."),
) -> None:
    """Profile a training command line: where the time of each phase goes, and an optional torch trace.

    Example: [bold]rlcli profile train ppo --env cartpole --steps 20000 --trace prof/[/bold]
    """
    from rlcli.config.fields import ConfigError

    args = list(ctx.args)
    if not args or args[0] not in PROFILED_COMMANDS:
        raise ConfigError(f"profile what? give a command line starting with one of: {', '.join(PROFILED_COMMANDS)}"
                          f" (e.g. rlcli profile train ppo --env cartpole --steps 20000)")
    from rlcli.cli.train import config_from_args

    p = train_params(ctx, args[1:])
    refuse({"--study": p["study"], "--workers": p["workers"], "--ray": p["ray"], "--resume": p["resume"], "--dry-run": p["dry_run"],
            "--config-options": p["config_options"], "--quiet": p["quiet"],
            "--seeds (more than one)": p["seeds"][1:]}, "under profile (it profiles one run of one seed)")
    cfg = config_from_args(p["algo"], p["env"], p["preset"], p["overrides"], p["policy"], p["technique"],
                           p["steps"], p["device"], p["runs_dir"], p["name"], p["tensorboard"])
    if p["seeds"]:
        cfg.run.seed = p["seeds"][0]

    from rich.console import Console
    from rich.table import Table

    import rlcli

    result = rlcli.profile(cfg, trace_dir=trace, keep_run=keep_run)
    table = Table(title=f"rlcli profile: {cfg.algo} on {cfg.env.id}, {result.steps} env steps in "
                        f"{result.wall_time:.1f} s = {result.steps_per_second:.0f} steps/s")
    for col in ("phase", "seconds", "share", "µs / env step"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for name, seconds, share, per_step in result.rows():
        table.add_row(name, f"{seconds:.2f}", f"{share:.1%}", f"{per_step:.1f}")
    console = Console()
    console.print(table)
    if result.top_ops:
        print(result.top_ops)
    if trace:
        files = ", ".join(str(f) for f in result.trace_files) or "(none: the run had too few iterations)"
        console.print(f"trace: {files}  (open in TensorBoard's profiler or chrome://tracing / ui.perfetto.dev)")
