"""AD over several seeds: each seed's `rlcli eval` on the test tasks, pooled, with the README's table.

    PYTHONPATH=. python benchmarks/ad_seeds.py [--episodes 40] [--temperature T] RUN[:A2C.h5] RUN[:A2C.h5] ...

Each RUN is one seed's AD run (its own collection, its own distill); the optional A2C.h5 is another
collection with the same split (``--compare-histories``). Every run is evaluated as ``rlcli eval RUN
--tasks test --checkpoint best`` does (92 runs by default, its baselines on the same tasks and seeds). Per
agent the script prints the pooled last-10 figure with its 95% stratified bootstrap CI (runs resampled within
each (seed, task)), each seed's figure and CI, the mean return at a few episodes, and AD's smallest margin
per episode over the A2C agents and the random walk, pooled and per seed. A research figure, not a speed
benchmark: it lives here beside the other measurement scripts so that the README's table can be rerun.
"""

from __future__ import annotations

import argparse

import numpy as np

from rlcli.ad.evaluate import AgentCurves, evaluate_ad

LAST = 10
MARKS = (1, 10, 20, 50, 100, 200)
NAMES = {"source": "source", "compare": "A2C"}  # AgentCurves.name -> row name (the baselines keep theirs)


def pooled(curves: list[AgentCurves], seed_offset: int = 1000) -> AgentCurves:
    """One seed's agent per item -> all their runs, each task made distinct per seed (bootstrap strata)."""
    episodes = min(c.returns.shape[1] for c in curves)
    return AgentCurves(curves[0].name, np.concatenate([c.returns[:, :episodes] for c in curves]),
                       np.concatenate([c.tasks + seed_offset * k for k, c in enumerate(curves)]), curves[0].title)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+", help="RUN or RUN:A2C_HISTORIES.h5, one per seed")
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--temperature", type=float, default=None, help="default: each run's ad.temperature")
    args = p.parse_args()
    n = args.episodes
    last = min(LAST, n)
    per_agent: dict[str, list[AgentCurves]] = {}
    for spec in args.runs:
        run, _, compare = spec.partition(":")
        result = evaluate_ad(run, tasks="test", episodes=n, gifs=0, checkpoint="best", temperature=args.temperature,
                             compare_histories=compare or None, out_dir=f"{run}/eval-seeds")
        for agent in result.agents():
            per_agent.setdefault(NAMES.get(agent.name, agent.name), []).append(agent)
    means = {}
    for name, curves in per_agent.items():
        if min(c.returns.shape[1] for c in curves) < n:
            print(f"{name:24s} its histories hold fewer than {n} episodes")
            continue
        seeds = [c.estimate(n - last + 1, n) for c in curves]
        together = pooled(curves)
        value, low, high = together.estimate(n - last + 1, n)
        means[name] = [c.returns[:, :n].mean(0) for c in curves], together.returns[:, :n].mean(0)
        curve = means[name][1]
        print(f"{name:24s} last {last} of {n}: {value:.3f} ({low:.3f}-{high:.3f}), n = {len(together.returns)} | "
              f"per seed " + "; ".join(f"{v:.3f} ({lo:.3f}-{hi:.3f})" for v, lo, hi in seeds) + " | "
              + " ".join(f"ep {e}: {curve[e - 1]:.2f}" for e in MARKS if e <= n))
    for other in ("A2C", "random_walk_then_return"):
        if other not in means or "ad" not in means:
            continue
        diffs = [("pooled", means["ad"][1] - means[other][1])]
        diffs += [(f"seed {k}", a - o) for k, (a, o) in enumerate(zip(means["ad"][0], means[other][0], strict=True))]
        for who, d in diffs:
            print(f"AD minus {other}, {who}: smallest {d.min():+.3f} at episode {int(d.argmin()) + 1}; "
                  f"below it at {int((d < 0).sum())} of {n} episodes")


if __name__ == "__main__":
    main()
