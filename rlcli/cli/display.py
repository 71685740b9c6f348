"""Terminal output shared by the subcommands: the live training display and option tables."""

from __future__ import annotations

import sys
import time

from rlcli.engine.progress import PlainReporter, Progress, Reporter


def fmt_seconds(s: float) -> str:
    if s == float("inf"):
        return "--:--"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


class RichReporter(Reporter):
    """A live progress bar: steps, steps/s, recent return, ETA and the share of time per phase."""

    def __init__(self, refresh_per_second: float = 8.0):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), console=self.console,
                                 refresh_per_second=refresh_per_second, transient=False)
        self.task = None
        self._last = 0.0

    def start(self, run_dir: str, start_step: int, total_steps: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("train", total=total_steps, completed=start_step, info="")

    def update(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and p.step < p.total_steps:
            return
        self._last = now
        ret = f"{p.recent_return:7.1f}" if p.recent_return is not None else "      -"
        shares = " ".join(f"{k} {v:.0%}" for k, v in p.phase_shares.items())
        info = (f"{p.steps_per_second:6.0f} steps/s  return {ret}  ETA {fmt_seconds(p.eta)}  "
                f"[dim]{shares}[/dim]")
        self.progress.update(self.task, completed=min(p.step, p.total_steps), info=info)

    def message(self, text: str) -> None:
        self.progress.console.print(text)

    def stop(self) -> None:
        self.progress.stop()


def make_reporter(quiet: bool) -> Reporter:
    """Rich on a terminal; plain periodic lines when quiet or not a TTY."""
    if not quiet and sys.stderr.isatty():
        return RichReporter()
    return PlainReporter(interval=30.0 if quiet else 5.0)


def print_options(rows: list[tuple[str, str, str, str]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in ("key", "type", "default", "help"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
