"""``rlcli report [RUNS...]``: tables of runs and groups, optional figures, and report.md."""

from __future__ import annotations

import typer

from rlcli.cli import values
from rlcli.cli.app import app


@app.command("report")
def report_command(
    runs: list[str] = typer.Argument(None, help="Run folders or folders of runs (default: runs/).",
                                     autocompletion=values.complete_run, show_default=False),
    curves: bool = typer.Option(False, "--curves", help="Learning-curve PNGs (mean over seeds with a band)."),
    grs: bool = typer.Option(False, "--grs", help="GRS degradation-curve PNGs (return vs shift level)."),
    heatmap: bool = typer.Option(False, "--heatmap", help="GRS heatmap PNG and coloured table (needs eval --shift)."),
    out: str = typer.Option("report", "--out", "-o", help="Folder for the figures and report.md."),
    thresholds: list[str] = typer.Option([], "--threshold", help="ENV=RETURN for steps-to-threshold "
                                         "(repeatable; default cartpole=475)."),
) -> None:
    """Summarise runs: algorithm, env, technique, seed, steps, eval returns, wall time, GRS.

    Example: [bold]rlcli report runs/ --curves --out report/[/bold]
    """
    import rlcli
    from rlcli.config.fields import ConfigError

    parsed = {}
    for text in thresholds:
        env, _, value = text.partition("=")
        try:
            parsed[env.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--threshold expects ENV=RETURN such as cartpole=475, got '{text}'") from None
    result = rlcli.report(runs or ["runs"], curves=curves, grs=grs, heatmap=heatmap, out=out, thresholds=parsed)

    from rich.console import Console

    from rlcli.report.runs import GROUP_COLUMNS, RUN_COLUMNS, RUN_NOTES, group_notes, rich_table, run_rows

    console = Console()
    if not console.is_terminal:
        console.width = 200  # logs and pipes: keep each row on one line
    console.print(rich_table("Groups (runs whose configs differ only in the seed)", GROUP_COLUMNS,
                             result.group_table, group_notes(result.thresholds)))
    console.print(rich_table("Runs", RUN_COLUMNS, run_rows(result.runs, result.groups), RUN_NOTES))
    if heatmap and result.heatmap is not None:
        console.print(result.heatmap.rich_table())
    for path in result.files:
        console.print(f"wrote {path}")
