"""Terminal output of ``rlcli eval`` for Algorithm Distillation runs: one row per agent (AD, its source
agents, a compared collection's agents, the scripted baselines) with its return at a few episode indices
and its last-episodes figure with a bootstrap CI over runs."""

from __future__ import annotations

from rlcli.ad.evaluate import ADEvalResult


def print_ad_eval(result: ADEvalResult) -> None:
    """Return at episodes 1, 10 and 20 (those that exist) and over the last 10 of E, per agent, with its
    number of runs n and the 95% CI of the last-10 figure (sweep + return: the upper bound); then the source
    agents' return later in their own learning, AD's headline, the plot and the GIFs."""
    from rich.console import Console
    from rich.table import Table

    n = result.returns.shape[1]
    last = min(10, n)
    marks = [e for e in (1, 10, 20) if e <= n]
    agents = result.agents()
    table = Table(title=f"in-context return per episode, {len(result.tasks)} tasks ({result.checkpoint}, "
                        f"step {result.step})")
    table.add_column("agent")
    for e in marks:
        table.add_column(f"ep {e}", justify="right")
    table.add_column(f"last {last}/{n}", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("runs", justify="right")
    for agent in agents:
        curve = agent.returns.mean(0)
        cells = [f"{curve[e - 1]:.2f}" if e <= len(curve) else "-" for e in marks]
        if len(curve) >= n:
            mean, low, high = agent.estimate(n - last + 1, n, seed=result.seed)
            cells += [f"{mean:.2f}", f"{low:.2f}-{high:.2f}"]
        else:
            cells += ["-", "-"]
        table.add_row(agent.label, *cells, str(len(agent.returns)))
    console = Console()
    if not console.is_terminal:  # a log or a pipe: the default 80 columns would fold the agent names
        console = Console(width=110)
    console.print(table)
    if result.source_returns is not None:
        source = result.source_returns.mean(0)
        later = [f"episode {e} {source[e - 1]:.2f}" for e in (100, 1000) if n < e < len(source)]
        if len(source) > n:
            later.append(f"episode {len(source)} (last) {source[-1]:.2f}")
        if later:
            console.print(f"{result.agents()[1].label} later in their own learning: {', '.join(later)}")
    console.print(f"AD samples its actions at temperature {result.temperature:g}; baselines: {result.repeats} runs "
                  f"per task, run r seeded with {result.seed} + r")
    console.print(result.summary(last))
    if result.plot is not None:
        console.print(f"plot: {result.plot}")
    for gif in result.gifs:
        console.print(f"gif: {gif}")
