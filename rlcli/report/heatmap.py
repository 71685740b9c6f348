"""The GRS heatmap: rows algorithm + technique (and what else sets a group apart), columns environment,
cells mean GRS over seeds with its interval (the 95% stratified-bootstrap CI from 3 seeds on, the min-max
range below that); as a PNG, a coloured rich table and markdown.

Runs whose GRS is undefined (return at the lowest shift level <= 0) are left out of the cells and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcli.evaluation.aggregate import Estimate, Spread, mean_spread, summarize

GRS_NOTES = ("Cells: mean GRS over seeds (interval), the interval being the 95% stratified-bootstrap CI (CI) "
             "from 3 seeds on and the min-max range over the seeds (range) below that.")


@dataclass
class GRSCell:
    values: list[float]  # GRS of each seed
    mean: Spread
    iqm: Estimate


@dataclass
class GRSTable:
    rows: list[tuple[str, str]]  # (algorithm, technique)
    cols: list[str]  # environments
    cells: dict[tuple[tuple[str, str], str], GRSCell]
    overall: dict[tuple[str, str], dict[str, Estimate]]  # across environments, rows with every environment
    undefined: int  # runs with a shift curve but no defined GRS

    @staticmethod
    def label(row: tuple[str, str]) -> str:
        return f"{row[0]} + {row[1]}"

    def cell_text(self, row: tuple[str, str], col: str) -> str:
        cell = self.cells.get((row, col))
        if cell is None:
            return "-"
        kind = "CI" if cell.mean.kind.endswith("CI") else "range"
        return f"{cell.mean.value:.3f} [{cell.mean.low:.3f}, {cell.mean.high:.3f}] {kind}"

    def summary_lines(self) -> list[str]:
        """Markdown sentences: which combination generalises best, per environment and overall."""
        lines = []
        for col in self.cols:
            ranked = sorted((-c.mean.value, row) for (row, env), c in self.cells.items() if env == col)
            if not ranked:
                continue
            best = self.cells[(ranked[0][1], col)]
            text = (f"- **{col}**: **{self.label(ranked[0][1])}** generalises best, mean GRS "
                    f"{best.mean.text(3)} ({len(best.values)} seeds)")
            if len(ranked) > 1:
                second = self.cells[(ranked[1][1], col)]
                overlap = second.mean.high >= best.mean.low
                text += (f"; runner-up {self.label(ranked[1][1])} {second.mean.text(3)}"
                         + (" (the intervals overlap: not a clear win)" if overlap else " (intervals disjoint)"))
            if len(ranked) > 2:
                worst = self.cells[(ranked[-1][1], col)]
                text += f"; lowest {self.label(ranked[-1][1])} {worst.mean.value:.3f}"
            lines.append(text + ".")
        if len(self.cols) > 1 and self.overall:
            row, est = max(self.overall.items(), key=lambda kv: kv[1]["iqm"].value)
            lines.append(f"- **all environments** (IQM over seeds x environments, stratified bootstrap): "
                         f"**{self.label(row)}**, IQM GRS {est['iqm'].value:.3f} [{est['iqm'].low:.3f}, "
                         f"{est['iqm'].high:.3f}], mean {est['mean'].value:.3f}.")
        if self.undefined:
            lines.append(f"- {self.undefined} run(s) left out: GRS undefined (return <= 0 at the lowest level).")
        lines.append("- GRS = area under return-vs-shift normalised by the level-0 return (1 = no degradation); "
                     "read it beside the level-0 return: a policy that never learned degrades little.")
        return lines

    def markdown(self) -> str:
        head = "| algorithm + technique | " + " | ".join(self.cols) + " |"
        lines = [head, "|" + "---|" * (len(self.cols) + 1)]
        lines += ["| " + self.label(row) + " | " + " | ".join(self.cell_text(row, c) for c in self.cols) + " |"
                  for row in self.rows]
        return "\n".join(lines)

    def rich_table(self):
        """A rich Table, cells coloured green (GRS >= 0.9), yellow (>= 0.7) or red."""
        from rich import box
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="GRS: mean over seeds (interval)", caption=GRS_NOTES, caption_justify="left",
                      box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False, pad_edge=False)
        table.add_column("algorithm + technique")
        for col in self.cols:
            table.add_column(col, justify="right")
        for row in self.rows:
            texts = []
            for col in self.cols:
                cell = self.cells.get((row, col))
                if cell is None:
                    texts.append("[dim]-[/dim]")
                    continue
                style = "green" if cell.mean.value >= 0.9 else "yellow" if cell.mean.value >= 0.7 else "red"
                texts.append(f"[{style}]{escape(self.cell_text(row, col))}[/{style}]")
            table.add_row(escape(self.label(row)), *texts)
        return table


def grs_table(groups: dict, reps: int) -> GRSTable | None:
    """The heatmap's numbers from runs grouped over seeds (:func:`rlcli.report.runs.group_runs`); None
    without GRS. A row is an algorithm and a technique, with the group's variant when it has one."""
    cells: dict[tuple[tuple[str, str], str], GRSCell] = {}
    undefined = 0
    for key, runs in groups.items():
        values = [r.grs for r in runs if r.grs is not None]
        undefined += sum(math.isnan(v) for v in values)
        values = [v for v in values if not math.isnan(v)]
        if values:
            technique = key.technique + (f" ({key.variant})" if key.variant else "")
            cells[((key.algo, technique), key.env)] = GRSCell(values, mean_spread(values, reps),
                                                              summarize(values, reps)["iqm"])
    if not cells:
        return None
    rows = sorted({row for row, _ in cells})
    cols = sorted({col for _, col in cells})
    overall = {}
    for row in rows:
        per_env = [cells[(row, c)].values for c in cols if (row, c) in cells]
        if len(per_env) == len(cols) and len({len(v) for v in per_env}) == 1:
            overall[row] = summarize(np.array(per_env).T, reps)  # (seeds, environments)
    return GRSTable(rows, cols, cells, overall, undefined)


def plot_heatmap(table: GRSTable, path: Path) -> Path:
    """Draw the heatmap PNG at ``path`` (matplotlib, Agg)."""
    from matplotlib.figure import Figure

    grid = np.full((len(table.rows), len(table.cols)), np.nan)
    for i, row in enumerate(table.rows):
        for j, col in enumerate(table.cols):
            if (row, col) in table.cells:
                grid[i, j] = table.cells[(row, col)].mean.value
    fig = Figure(figsize=(2.6 * len(table.cols) + 2.5, 0.7 * len(table.rows) + 1.5), dpi=100)
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="RdYlGn", vmin=0.0, vmax=max(1.0, float(np.nanmax(grid))), aspect="auto")
    fig.colorbar(image, ax=ax, label="GRS (1 = no degradation)")
    ax.set_xticks(range(len(table.cols)), table.cols)
    ax.set_yticks(range(len(table.rows)), [table.label(r) for r in table.rows])
    for i, row in enumerate(table.rows):
        for j, col in enumerate(table.cols):
            cell = table.cells.get((row, col))
            if cell is not None:
                kind = "CI" if cell.mean.kind.endswith("CI") else "range"
                ax.text(j, i, f"{cell.mean.value:.2f}\n[{cell.mean.low:.2f}, {cell.mean.high:.2f}] {kind}\n"
                        f"{len(cell.values)} seeds", ha="center", va="center", fontsize=8)
    ax.set_title("GRS: mean over seeds (interval)")
    fig.text(0.01, -0.02, "interval: 95% stratified-bootstrap CI of the mean (CI) from 3 seeds on, "
             "min-max over the seeds (range) below that", fontsize=7, ha="left", va="top")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path
