"""One short training of every learner on CUDA, printing steps/s: the check that the --device cuda paths run.

    PYTHONPATH=. python benchmarks/gpu_smoke.py [--steps 20000] [--precision bf16] [--compile] [--device cpu]

Each learner ``rlcli train`` trains (ppo, vapor, dqn, es, rnd, a2c: :func:`rlcli.registry.algorithms`) trains
for ``--steps`` env steps on its CartPole preset (``--env`` picks another, e.g. minigrid for the CNN nets),
and AD collects a small DarkRoom history set and distills the full-size transformer for ``--ad-steps``
gradient steps (its end-of-run in-context evaluation cut to 4 episodes, but counted in its rate). Every run uses ``run.device``, ``run.precision`` and ``run.compile`` from the flags. Without
CUDA it prints "no cuda: not measured" and exits 0; ``--device cpu`` runs the same on the CPU (a dry check;
there the full-size transformer costs about 25 s per gradient step, so pass ``--ad-steps 1``).
Exit status 1 when any learner failed (each failure is printed, the others still run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path


def _common(args: argparse.Namespace, runs_dir: Path, name: str) -> list[str]:
    return [f"run.device={args.device}", f"run.precision={args.precision}",
            f"run.compile={str(args.compile).lower()}", f"run.runs_dir={runs_dir}", f"run.name={name}",
            "run.eval_episodes=2", "run.checkpoint_every=0", "run.torch_threads=1"]


def smoke_learner(algo: str, args: argparse.Namespace, runs_dir: Path) -> float:
    import rlcli

    cfg = rlcli.resolve_config(algo, env=args.env, overrides=[f"run.total_steps={args.steps}",
                                                              *_common(args, runs_dir, algo)])
    return rlcli.train(cfg).steps_per_second


def smoke_ad(args: argparse.Namespace, runs_dir: Path) -> float:
    """Collect a small history set, then distill the seed-size transformer; gradient steps/s of the distill."""
    import rlcli
    from rlcli.ad.distill import distill_config

    histories = runs_dir / "histories.h5"
    cfg, _ = distill_config("darkroom", "darkroom-ad", [
        "collect.max_train_tasks=4", "collect.steps_per_agent=20000", "collect.streams_per_agent=2",
        f"run.total_steps={args.ad_steps}", "run.eval_every=0", "ad.eval_episodes=4", "ad.eval_repeats=1",
        *_common(args, runs_dir, "ad")])
    rlcli.collect(cfg, histories)
    return rlcli.distill(cfg, histories=str(histories)).steps_per_second


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--steps", type=int, default=20_000, help="env steps per learner")
    p.add_argument("--ad-steps", type=int, default=200, help="AD distill gradient steps")
    p.add_argument("--env", default="cartpole")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--compile", action="store_true")
    p.add_argument("--only", nargs="*", default=None, help="learners to run (default: all registered)")
    args = p.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no cuda: not measured")
        return 0
    from rlcli import registry

    learners = [s.name for s in registry.algorithms("train")] + ["ad"]
    if args.only:
        learners = [a for a in learners if a in args.only]
    failed = []
    with tempfile.TemporaryDirectory() as d:
        for algo in learners:
            t0 = time.perf_counter()
            try:
                rate = smoke_ad(args, Path(d)) if algo == "ad" else smoke_learner(algo, args, Path(d))
            except Exception:  # noqa: BLE001 -- a smoke test reports every learner's failure and goes on
                failed.append(algo)
                print(f"{algo:6s} FAILED on {args.device}:\n{traceback.format_exc()}", flush=True)
                continue
            unit = "gradient steps/s (distill)" if algo == "ad" else "env steps/s"
            print(f"{algo:6s} {args.device} {args.precision}{' compiled' if args.compile else ''}: "
                  f"{rate:,.{0 if rate >= 100 else 2}f} {unit} ({time.perf_counter() - t0:.0f} s wall)", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
