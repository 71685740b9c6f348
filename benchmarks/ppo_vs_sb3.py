"""PPO on CartPole-v1: rlcli vs Stable-Baselines3, same hyperparameters, side by side in one run.

    python benchmarks/ppo_vs_sb3.py [--steps 100000] [--repeats 2] [--threads 1] [--whole-process]

Both train 4 envs x 128 steps per update, 4 epochs x 4 minibatches, Adam lr 2.5e-4, a 64x64 tanh MLP for
actor and critic, GAE(0.99, 0.95), clip 0.2, entropy 0.01, value 0.5, grad-norm 0.5, on the CPU with the
same torch thread count. Each training runs in its own subprocess (fresh interpreter, no shared state),
alternating rlcli and SB3; the wall time covers building the agent and ``learn``/``train`` to the last
step. Imports happen before the clock starts in both: SB3's by ``from stable_baselines3 import PPO``,
rlcli's (which imports lazily) by importing its training modules; SB3's script also imports
``torch._dynamo`` first, which building any ``torch.optim`` optimizer imports (about a second; rlcli's
optimizer, rlcli.engine.optim.FusedAdam, does not). Three clocks are reported: wall time; CPU time (time.process_time, which other jobs on the machine
inflate less); and train_wall, the wall time less rlcli's final 10-episode evaluation, which SB3 does not
do (training only, as SB3's ``learn`` is). rlcli's periodic evaluation and GAS probe are off for the same
reason.

``--whole-process`` times what a user waits for instead: each command from its start to its exit, imports
included (nothing is imported before the clock). rlcli runs as the console command ``rlcli train ppo --env
cartpole`` with the same hyperparameters (``--set``; periodic evaluation and GAS probe off as above), so it
also writes its run folder and plays its final 10-episode evaluation; SB3 runs as a script that imports
stable_baselines3, builds the same PPO and calls ``learn``. Both clocks are reported: wall time, and CPU
time of the child process (user + system, from ``resource.getrusage``).

Needs the benchmark extra: pip install -e ".[bench]".
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RLCLI = """
import json, sys, time, tempfile, torch
torch.set_num_threads({threads})
import gymnasium, h5py
import rlcli, rlcli.engine.train, rlcli.algos.ppo, rlcli.envs.cartpole, rlcli.engine.episodes
with tempfile.TemporaryDirectory() as runs:
    cfg = rlcli.resolve_config("ppo", env="cartpole", overrides=[
        "run.total_steps={steps}", "run.runs_dir=" + runs, "run.torch_threads={threads}", "run.seed=0",
        "env.num_envs=4", "ppo.num_steps=128", "ppo.num_epochs=4", "ppo.num_minibatches=4",
        "ppo.learning_rate=2.5e-4", "policy.hidden_sizes=[64,64]", "policy.activation=tanh", "run.device=cpu",
        "run.eval_every=0", "gar.gas_every=0"])  # no periodic eval or GAS probe (SB3 does neither)
    t, c = time.perf_counter(), time.process_time()
    result = rlcli.train(cfg)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
eval_s = result.phase_times.get("eval", 0.0)  # the final 10-episode evaluation, which SB3 does not do
print(json.dumps({{"steps": result.steps, "wall": wall, "cpu": cpu, "eval": result.final_eval_return,
                  "train_wall": wall - eval_s}}))
"""

SB3 = """
import json, time, torch
torch.set_num_threads({threads})
import torch._dynamo
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
t, c = time.perf_counter(), time.process_time()
env = make_vec_env("CartPole-v1", n_envs=4, seed=0)
model = PPO("MlpPolicy", env, n_steps=128, batch_size=128, n_epochs=4, learning_rate=2.5e-4, gamma=0.99,
            gae_lambda=0.95, clip_range=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
            policy_kwargs=dict(net_arch=[64, 64], activation_fn=torch.nn.Tanh), device="cpu", seed=0, verbose=0)
model.learn(total_timesteps={steps})
wall, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({{"steps": int(model.num_timesteps), "wall": wall, "cpu": cpu, "eval": None, "train_wall": wall}}))
"""


SB3_SCRIPT = """
import torch
torch.set_num_threads({threads})
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
env = make_vec_env("CartPole-v1", n_envs=4, seed=0)
model = PPO("MlpPolicy", env, n_steps=128, batch_size=128, n_epochs=4, learning_rate=2.5e-4, gamma=0.99,
            gae_lambda=0.95, clip_range=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
            policy_kwargs=dict(net_arch=[64, 64], activation_fn=torch.nn.Tanh), device="cpu", seed=0, verbose=0)
model.learn(total_timesteps={steps})
"""


def rlcli_command(steps: int, threads: int, runs_dir: str) -> list[str]:
    """``rlcli train ppo --env cartpole`` with the hyperparameters above (the console script when installed)."""
    script = Path(sys.executable).parent / "rlcli"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "rlcli.cli.main"]
    sets = ["env.num_envs=4", "ppo.num_steps=128", "ppo.num_epochs=4", "ppo.num_minibatches=4",
            "ppo.learning_rate=2.5e-4", "policy.hidden_sizes=[64,64]", "policy.activation=tanh",
            f"run.torch_threads={threads}", "run.eval_every=0", "gar.gas_every=0"]
    return [*head, "train", "ppo", "--env", "cartpole", "--steps", str(steps), "--device", "cpu", "--runs-dir",
            runs_dir, "--quiet", *[x for kv in sets for x in ("--set", kv)]]


def timed(command: list[str]) -> dict:
    """Wall and CPU seconds of one child process, from its start to its exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "stdout": out.stdout}


def whole_process(steps: int, repeats: int, threads: int) -> None:
    results: dict[str, list[dict]] = {"rlcli": [], "sb3": []}
    with tempfile.TemporaryDirectory() as runs:
        for i in range(repeats):
            for name in ("rlcli", "sb3"):
                command = (rlcli_command(steps, threads, runs) if name == "rlcli" else
                           [sys.executable, "-c", SB3_SCRIPT.format(steps=steps, threads=threads)])
                r = timed(command)
                results[name].append(r)
                print(f"[{i + 1}/{repeats}] {name:5s}: start to exit {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU",
                      flush=True)
    for clock in ("wall", "cpu"):
        best = {k: min(r[clock] for r in v) for k, v in results.items()}
        print(f"whole process, best of {repeats} by {clock} time: rlcli {best['rlcli']:.2f} s, SB3 {best['sb3']:.2f} s, "
              f"ratio SB3/rlcli = {best['sb3'] / best['rlcli']:.2f}x ({steps} steps, torch threads {threads})")


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--whole-process", action="store_true",
                        help="time each command from start to exit, imports included")
    args = parser.parse_args()
    if args.whole_process:
        whole_process(args.steps, args.repeats, args.threads)
        return
    fmt = dict(steps=args.steps, threads=args.threads)
    results: dict[str, list[dict]] = {"rlcli": [], "sb3": []}
    with tempfile.TemporaryDirectory():
        for i in range(args.repeats):
            for name, code in (("rlcli", RLCLI), ("sb3", SB3)):
                r = run(code.format(**fmt))
                results[name].append(r)
                ev = f", final eval {r['eval']:.1f}" if r["eval"] is not None else ""
                print(f"[{i + 1}/{args.repeats}] {name:5s}: {r['steps']} steps in {r['wall']:.1f} s wall = "
                      f"{r['steps'] / r['wall']:.0f} steps/s ({r['steps'] / r['cpu']:.0f} steps per CPU-second)"
                      f"{ev}", flush=True)
    for clock in ("wall", "cpu", "train_wall"):
        best = {k: max(r["steps"] / r[clock] for r in v) for k, v in results.items()}
        print(f"best of {args.repeats} by {clock} time: rlcli {best['rlcli']:.0f} steps/s, SB3 {best['sb3']:.0f} "
              f"steps/s, ratio rlcli/SB3 = {best['rlcli'] / best['sb3']:.2f}x (torch threads {args.threads})")


if __name__ == "__main__":
    main()
