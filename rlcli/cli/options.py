"""``--config-options``: every key a run reads, with type, default and help, whole at any terminal width."""

from __future__ import annotations

WIDE = 110  # columns from which a table fits; narrower terminals get one entry per key


def print_options(rows: list[tuple[str, str, str, str]], title: str) -> None:
    """A table on wide terminals; below :data:`WIDE` columns each key on its own line (never cut), its help
    wrapped underneath, so that ``collect.test_histories_per_task`` stays whole at 80 columns."""
    import os
    import textwrap

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = max(console.width, WIDE)  # pipes and logs: the table, one row per line
    if console.width >= WIDE:
        key_width = max(len(r[0]) for r in rows)
        table = Table(title=title, show_lines=False)
        table.add_column("key", no_wrap=True, min_width=key_width)
        table.add_column("type", no_wrap=True)
        table.add_column("default", overflow="fold", max_width=24)
        table.add_column("help", overflow="fold", ratio=1)
        for row in rows:
            table.add_row(*map(escape, row))
        console.print(table)
        return
    console.print(f"[bold]{escape(title)}[/bold]")
    for key, type_, default, help_ in rows:
        console.print(f"[bold]{escape(key)}[/bold] [dim]{escape(type_)} = {escape(default)}[/dim]", overflow="fold")
        console.print(textwrap.fill(help_, console.width - 1, initial_indent="    ", subsequent_indent="    "),
                      markup=False)
