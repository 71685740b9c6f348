"""Starpilot throughput: the PPO training loop's env steps/s beside the raw env's steps/s, in one run.

    PYTHONPATH=. python benchmarks/starpilot_throughput.py [--steps 8192] [--num-envs 16]

Raw: the same vectorized Starpilot (4 stacked 64x64 RGB frames, gym3 -> gymnasium adapter) stepped with
random actions. PPO: ``rlcli.train`` with presets/ppo-starpilot.toml (Nature-CNN policy, 256 steps per env
per iteration, 3 epochs of 8 minibatches) for the same number of steps, on CPU with one torch thread.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def raw_steps_per_second(num_envs: int, steps: int) -> float:
    from rlcli.envs.procgen import StarpilotVectorEnv

    env = StarpilotVectorEnv(num_envs, 0.0, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps // num_envs):
        env.step(rng.integers(0, 15, num_envs))
    return (steps // num_envs) * num_envs / (time.perf_counter() - start)


def ppo_steps_per_second(num_envs: int, steps: int) -> tuple[float, dict[str, float]]:
    import rlcli

    with tempfile.TemporaryDirectory() as runs:
        cfg = rlcli.resolve_config("ppo", env="starpilot", overrides=[f"env.num_envs={num_envs}"],
                                   extra={"run": {"total_steps": steps, "runs_dir": runs, "name": "bench",
                                                  "device": "cpu", "eval_episodes": 1}})
        result = rlcli.train(cfg)
    total = sum(result.phase_times.values()) or 1.0
    shares = {k: v / total for k, v in result.phase_times.items()}
    train_time = result.wall_time - result.phase_times.get("eval", 0.0)
    return result.steps / train_time, shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8192, help="env steps for each measurement")
    parser.add_argument("--num-envs", type=int, default=16)
    args = parser.parse_args()
    raw = raw_steps_per_second(args.num_envs, args.steps)
    ppo, shares = ppo_steps_per_second(args.num_envs, args.steps)
    print(f"starpilot, {args.num_envs} envs, {args.steps} steps, CPU")
    print(f"  raw env (random actions): {raw:8.0f} steps/s")
    print(f"  PPO training loop:        {ppo:8.0f} steps/s  ({ppo / raw:.1%} of raw; time shares: "
          + ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])) + ")")


if __name__ == "__main__":
    main()
