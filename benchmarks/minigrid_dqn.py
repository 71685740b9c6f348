"""Why the seed's DQN failed on MiniGrid: DQN with the seed's observation encoding beside rlcli's, one run.

    PYTHONPATH=. python benchmarks/minigrid_dqn.py [--steps 200000] [--n-step 1] [--seed 0] [--encodings index,onehot]

Both runs use presets/dqn-minigrid.toml at level 0 (6x6, 2 moving balls) with the same budget, seed and
n-step; only the observation differs: the seed's 49 object ids of the 7x7 view divided by 10, without the
agent's direction ("index"), against rlcli's one-hot view plus compass direction ("onehot"). Prints the final
greedy evaluation return of each (20 episodes) and, for reference, a random policy's goal and crash rates.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np


def random_policy_outcomes(episodes_budget: int = 1500) -> tuple[float, float]:
    """(share of episodes reaching the goal, share crashing) of the uniform random policy, 16 envs."""
    from rlcli.envs.minigrid import make_minigrid_vec

    env = make_minigrid_vec(0.0, 16, 100)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    running = np.zeros(16)
    finals: list[float] = []
    for _ in range(episodes_budget):
        _, reward, term, trunc, _ = env.step(rng.integers(0, 3, 16))
        running += reward
        for i in np.flatnonzero(term | trunc):
            finals.append(running[i])
            running[i] = 0.0
    env.close()
    r = np.asarray(finals)
    return float((r > 0).mean()), float((r < 0).mean())


def register_index_encoding() -> None:
    from rlcli.envs.minigrid import make_minigrid, make_minigrid_vec
    from rlcli.registry import register_env
    from rlcli.specs import EnvSpec

    register_env(EnvSpec(
        "minigrid-index", "MiniGrid Dynamic-Obstacles with the seed's observation encoding",
        lambda c, n, s: make_minigrid_vec(c.variation_level, n, c.max_episode_steps, "index"),
        lambda c, s, r=None: make_minigrid(c.variation_level, r, c.max_episode_steps, "index"),
        "rlcli[minigrid]", modules=("minigrid",), variation=True,
        keys=("id", "num_envs", "variation_level", "max_episode_steps")))


def main() -> None:
    import rlcli

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--n-step", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encodings", default="index,onehot", help="comma-separated: index, onehot")
    args = parser.parse_args()
    goal, crash = random_policy_outcomes()
    print(f"random policy: goal {goal:.1%}, crash {crash:.1%} of episodes")
    register_index_encoding()
    with tempfile.TemporaryDirectory() as runs:
        for env_id in [{"index": "minigrid-index", "onehot": "minigrid"}[e] for e in args.encodings.split(",")]:
            cfg = rlcli.resolve_config("dqn", env=env_id, preset="dqn-minigrid", overrides=[f"dqn.n_step={args.n_step}"],
                                       extra={"env": {"id": env_id}, "run": {
                                           "total_steps": args.steps, "seed": args.seed, "runs_dir": runs,
                                           "name": env_id}})
            result = rlcli.train(cfg)
            print(f"dqn {env_id:15s} n_step {args.n_step}, {result.steps} steps: final eval return "
                  f"{result.final_eval_return:.2f} ± {result.final_eval_std:.2f}", flush=True)


if __name__ == "__main__":
    main()
