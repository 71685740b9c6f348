"""Terminal output shared by the subcommands: the live training display and option tables."""

from __future__ import annotations

import sys
import time

from rlcli.engine.progress import (
    CountReporter,
    PlainCountReporter,
    PlainReporter,
    Progress,
    Reporter,
    start_line,
)


def fmt_seconds(s: float) -> str:
    if s == float("inf"):
        return "--:--"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def fit_parts(parts: list[str], width: int, sep: str = "  ") -> str:
    """The leading ``parts`` that fit in ``width`` characters, joined by ``sep``; markup does not count."""
    from rich.text import Text

    out: list[str] = []
    used = 0
    for part in parts:
        size = Text.from_markup(part).cell_len + (len(sep) if out else 0)
        if used + size > width:
            break
        out.append(part)
        used += size
    return sep.join(out)


def _bar_width(console_width: int) -> int:
    """20 cells on a narrow terminal, up to 40 on a wide one."""
    return max(10, min(40, console_width // 4))


class RichReporter(Reporter):
    """A live line: bar, ``step/total``, steps/s, recent return (or the learner's loss and accuracy), ETA and
    the share of time per phase. What does not fit the terminal's width is left out from the end, so the
    phase shares go first and the bar and the counter always stay."""

    def __init__(self, refresh_per_second: float = 8.0):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = Console(stderr=True)
        self.bar = BarColumn(bar_width=_bar_width(self.console.width))
        self.progress = Progress(TextColumn("[bold]{task.description}"), self.bar, MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), console=self.console,
                                 refresh_per_second=refresh_per_second, transient=False)
        self.task = None
        self._last = 0.0
        self._status = ""
        self._progress: Progress | None = None  # the last update, redrawn when the status changes

    def start(self, run_dir: str, start_step: int, total_steps: int) -> None:
        self.console.print(start_line(run_dir), soft_wrap=True, highlight=False)  # a path stays one line, copyable
        self.progress.start()
        self.task = self.progress.add_task("train", total=total_steps, completed=min(start_step, total_steps),
                                           info="")

    def update(self, p: Progress) -> None:
        self._progress = p
        now = time.monotonic()
        if now - self._last < 0.1 and p.step < p.total_steps:
            return
        self._last = now
        self._draw(p)

    def status(self, text: str) -> None:
        self._status = text
        if self._progress is not None:
            self._draw(self._progress)
        elif self.task is not None:
            self.progress.update(self.task, info=text)

    def _draw(self, p: Progress) -> None:
        width = self.console.width
        self.bar.bar_width = _bar_width(width)
        counter = f"{p.total_steps}/{p.total_steps}"
        # "train" + bar + counter + the spaces between the four columns, and one cell spare against wrapping
        room = width - len("train") - self.bar.bar_width - len(counter) - 4
        parts = ([f"[bold]{self._status}[/bold]"] if self._status else []) + [f"{p.steps_per_second:.0f} steps/s"]
        if p.recent_return is not None:
            parts.append(f"return {p.recent_return:.1f}")
        parts += p.learner_texts()
        parts.append(f"ETA {fmt_seconds(p.eta)}")
        parts += [f"[dim]{k} {v:.0%}[/dim]" for k, v in p.phase_shares.items()]
        self.progress.update(self.task, completed=p.shown_step, info=fit_parts(parts, room))

    def message(self, text: str) -> None:
        self.progress.console.print(text)

    def stop(self) -> None:
        self.progress.stop()


class RichCountReporter(CountReporter):
    """A live bar for evaluations and studies: description, bar, ``done/total`` and a short note; it is
    removed when the count ends (the command prints its result instead)."""

    def __init__(self, refresh_per_second: float = 4.0):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.bar = BarColumn(bar_width=_bar_width(self.console.width))
        self.progress = Progress(TextColumn("[bold]{task.description}"), self.bar, MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=self.console,
                                 refresh_per_second=refresh_per_second, transient=True)
        self.task = None
        self.description, self.total = "", 0

    def start(self, description: str, total: int) -> None:
        self.description, self.total = description, total
        self.progress.start()
        self.task = self.progress.add_task(description, total=total, info="")

    def update(self, done: int, info: str = "") -> None:
        width = self.console.width
        self.bar.bar_width = _bar_width(width)
        room = width - len(self.description) - self.bar.bar_width - 2 * len(str(self.total)) - len("0:00:00") - 6
        from rich.markup import escape

        parts = [escape(part) for part in info.split("  ")]  # run names are text, not markup
        self.progress.update(self.task, completed=min(done, self.total), info=fit_parts(parts, room))

    def stop(self) -> None:
        self.progress.stop()


def make_reporter(quiet: bool) -> Reporter:
    """Rich on a terminal; plain periodic lines when quiet or not a TTY."""
    if not quiet and sys.stderr.isatty():
        return RichReporter()
    return PlainReporter(interval=30.0 if quiet else 5.0)


def make_count_reporter(quiet: bool = False) -> CountReporter:
    """A live bar on a terminal; a plain line every 10 s (30 s when quiet) otherwise."""
    if not quiet and sys.stderr.isatty():
        return RichCountReporter()
    return PlainCountReporter(interval=30.0 if quiet else 10.0)


def print_options(rows: list[tuple[str, str, str, str]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    # keys whole on one line (they are what a user types); type, default and help wrap around them
    table.add_column("key", no_wrap=True, min_width=max((len(row[0]) for row in rows), default=3))
    for col in ("type", "default", "help"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
