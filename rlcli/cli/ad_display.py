"""Terminal output of ``rlcli eval`` for Algorithm Distillation runs (a table of returns per episode)."""

from __future__ import annotations

import numpy as np


def print_ad_eval(result) -> None:
    """AD's in-context return per episode index beside the A2C source agents' at the same index."""
    from rich.console import Console
    from rich.table import Table

    ad = result.curve()
    source = result.source_returns.mean(0) if result.source_returns is not None else None
    n = len(ad)
    marks = sorted({1, 2, 3, 5, 10, 20, 30, n, *range(n - 9, n + 1)} & set(range(1, n + 1)))
    table = Table(title=f"in-context return per episode, {len(result.tasks)} tasks ({result.checkpoint}, "
                        f"step {result.step})")
    table.add_column("episode", justify="right")
    table.add_column("AD", justify="right")
    table.add_column("A2C source agents", justify="right")
    for e in marks:
        src = f"{source[e - 1]:.2f}" if source is not None and e <= len(source) else "-"
        table.add_row(str(e), f"{ad[e - 1]:.2f}", src)
    if source is not None:
        for e in (100, 1000, len(source)):
            if n < e <= len(source):
                table.add_row(str(e), "", f"{source[e - 1]:.2f}")
    console = Console()
    console.print(table)
    first = float(np.mean(ad[: min(3, n)]))
    console.print(f"AD: first {min(3, n)} episodes {first:.2f}")
    console.print(result.summary(min(10, n)))
    if result.plot is not None:
        console.print(f"plot: {result.plot}")
    for gif in result.gifs:
        console.print(f"gif: {gif}")
