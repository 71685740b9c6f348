"""Forward + backward throughput (samples/s) of policies at growing batch sizes, side by side.

One training step of the update is timed: ``policy.evaluate(obs, actions, extras)`` with the stored-mask
extras a rollout would give (consistent-dropout masks, ...), a PPO-shaped loss (log-prob, value, entropy),
``backward()``. Observations are random samples of the env's observation space.

    PYTHONPATH=. python benchmarks/policy_throughput.py                       # mlp vs vit-consistent-dropout
    PYTHONPATH=. python benchmarks/policy_throughput.py --policies vit-consistent-dropout --env cartpole \\
        --batches 1024 65536 --set policy.perceiver_dim=128 --threads 0 --device cpu
    PYTHONPATH=. python benchmarks/policy_throughput.py --algo rnd --env atari:Pong \
        --policies cnn vit-explorative --batches 256 2048             # the RND networks of issue 6
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def measure(policy, obs_space, batch: int, repeats: int, device: torch.device) -> float:
    """Median samples/s of forward + backward over ``repeats`` timed steps (after one warm-up step)."""
    obs = torch.as_tensor(np.stack([obs_space.sample() for _ in range(min(batch, 4096))]), device=device)
    obs = obs.repeat((batch + obs.shape[0] - 1) // obs.shape[0], *([1] * (obs.dim() - 1)))[:batch]
    actions = torch.zeros(batch, dtype=torch.int64, device=device)
    extras = policy.sample_extras(batch)
    times = []
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        logprob, entropy, value = policy.evaluate(obs, actions, extras)
        loss = -logprob.mean() + 0.5 * value.pow(2).mean() - 0.01 * entropy.mean()
        policy.zero_grad(set_to_none=True)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    from rlcli.config.presets import resolve_config
    from rlcli.envs.registry import make_vec_env
    from rlcli.nets.dual_value import make_dual_value_policy
    from rlcli.nets.policies import make_policy

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", nargs="+", default=["mlp", "vit-consistent-dropout"],
                        help="policy names (policy.name); the first is the reference of the ratio column")
    parser.add_argument("--algo", default="ppo", choices=("ppo", "vapor", "rnd"),
                        help="build the policies as this learner does (rnd: with an intrinsic value head; its "
                             "cnn is the RND paper's CNN)")
    parser.add_argument("--env", default="cartpole", help="env whose observation/action spaces size the nets")
    parser.add_argument("--batches", nargs="+", type=int, default=[1024 * 2**i for i in range(7)],
                        help="batch sizes (default 1k, 2k, ..., 64k)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per batch size (median is shown)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = torch default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="policy.key=value overrides, e.g. --set policy.perceiver_dim=32 (repeatable)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    policies = {}
    for name in args.policies:
        cfg = resolve_config(args.algo, env=args.env, overrides=[f"policy.name={name}", *args.overrides])
        env = make_vec_env(cfg.env, 0, num_envs=1)
        obs_space, action_space = env.single_observation_space, env.single_action_space
        env.close()
        build = make_dual_value_policy if args.algo == "rnd" else make_policy
        policy = build(cfg.policy, obs_space, action_space).to(device).train()
        params = sum(p.numel() for p in policy.parameters())
        policies[name] = (policy, obs_space)
        print(f"{name}: {params:,} parameters")
    print(f"env {args.env}, device {device}, torch threads {torch.get_num_threads()}, "
          f"forward + backward samples/s (median of {args.repeats})")
    ref = args.policies[0]
    header = f"{'batch':>7} " + " ".join(f"{n:>24}" for n in args.policies)
    if len(args.policies) > 1:
        header += " " + " ".join(f"{n + '/' + ref:>32}" for n in args.policies[1:])
    print(header)
    for batch in args.batches:
        rates = {n: measure(p, space, batch, args.repeats, device) for n, (p, space) in policies.items()}
        row = f"{batch:>7} " + " ".join(f"{rates[n]:>24,.0f}" for n in args.policies)
        if len(args.policies) > 1:
            row += " " + " ".join(f"{rates[n] / rates[ref]:>32.3f}" for n in args.policies[1:])
        print(row, flush=True)


if __name__ == "__main__":
    main()
