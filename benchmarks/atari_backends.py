"""Steps/s of RND training on atari:MontezumaRevenge, ale-py worker processes vs envpool, side by side.

    PYTHONPATH=. python benchmarks/atari_backends.py [--num-envs 16] [--iterations 2] [--policy cnn]

Two measurements per backend, each in this one run:

- env only: random actions through the vector env (``--env-steps`` steps per env);
- training: ``rlcli.train`` of the montezuma-rnd-vit preset with ``--num-envs`` envs for ``--iterations``
  iterations of 128 steps per env (a short random warm-up of the observation normaliser is included, as in
  any run); steps/s is the training loop's own figure, with its phase breakdown.

Prints both backends' figures and the envpool / ale-py ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import rlcli
from rlcli.config.presets import resolve_config
from rlcli.engine.progress import Reporter
from rlcli.engine.timing import PhaseTimer
from rlcli.envs.registry import make_vec_env

BACKENDS = ("ale-py", "envpool")


def env_steps_per_second(backend: str, num_envs: int, steps: int) -> float:
    cfg = resolve_config("rnd", preset="montezuma-rnd-vit", overrides=[f"env.backend={backend}"])
    env = make_vec_env(cfg.env, seed=0, num_envs=num_envs)
    try:
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for _ in range(steps):
            env.step(rng.integers(0, env.single_action_space.n, num_envs))
        return steps * num_envs / (time.perf_counter() - start)
    finally:
        env.close()


def training_steps_per_second(backend: str, num_envs: int, iterations: int, policy: str,
                              runs_dir: str) -> tuple[float, dict[str, float]]:
    cfg = resolve_config("rnd", preset="montezuma-rnd-vit", overrides=[
        f"env.backend={backend}", f"env.num_envs={num_envs}", f"policy.name={policy}", "rnd.warmup_steps=8",
        f"run.total_steps={iterations * 128 * num_envs}", f"run.runs_dir={runs_dir}", f"run.name={backend}",
        "run.eval_episodes=1", "env.max_episode_steps=200", "run.checkpoint_every=0"])
    timer = PhaseTimer()
    result = rlcli.train(cfg, reporter=Reporter(), timer=timer)
    train_phases = {k: v for k, v in timer.totals.items() if k != "eval"}
    total = sum(train_phases.values())
    steps_per_second = result.steps / total  # the final evaluation is not training time
    return steps_per_second, {k: v / total for k, v in train_phases.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--env-steps", type=int, default=200, help="random steps per env of the env-only test")
    parser.add_argument("--policy", default="vit-explorative")
    args = parser.parse_args()
    env_sps, train_sps, phases = {}, {}, {}
    with tempfile.TemporaryDirectory() as runs_dir:
        for backend in BACKENDS:
            env_sps[backend] = env_steps_per_second(backend, args.num_envs, args.env_steps)
            train_sps[backend], phases[backend] = training_steps_per_second(
                backend, args.num_envs, args.iterations, args.policy, runs_dir)
    print(f"atari:MontezumaRevenge, {args.num_envs} envs, policy {args.policy}")
    print(f"{'':>22} {'ale-py':>10} {'envpool':>10} {'envpool/ale-py':>15}")
    for label, figures in (("env steps/s", env_sps), ("training steps/s", train_sps)):
        a, e = figures["ale-py"], figures["envpool"]
        print(f"{label:>22} {a:>10.0f} {e:>10.0f} {e / a:>15.2f}")
    for backend in BACKENDS:
        print(f"training phases, {backend}: " + ", ".join(f"{k} {v:.0%}" for k, v in sorted(phases[backend].items())))


if __name__ == "__main__":
    main()
