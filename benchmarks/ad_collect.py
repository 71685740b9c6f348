"""Env steps/s of the batched A2C collector: all agents at once vs one agent's envs at a time.

    PYTHONPATH=. python benchmarks/ad_collect.py [--agents 57] [--updates 50] [--device cpu]

Runs the same rollout + update code (:class:`rlcli.ad.source_a2c.BatchedA2C` on a DarkRoomBatch) once with all
``--agents`` agents stacked, and once for a single agent (its 10 envs; how a per-agent loop would step),
and prints both rates side by side. Storage is left out: this measures the learner and the rooms.
"""

from __future__ import annotations

import argparse
import time

import torch

from rlcli.ad.source_a2c import BatchedA2C
from rlcli.config.ad import A2CConfig
from rlcli.envs.darkroom import DarkRoomBatch, task_goal


def rate(num_agents: int, updates: int, device: torch.device) -> float:
    hp = A2CConfig()
    agents = BatchedA2C(81, 5, hp, list(range(num_agents)), device)
    goals = torch.tensor([task_goal(a % 80) for a in range(num_agents) for _ in range(hp.num_envs)])
    rooms = DarkRoomBatch(goals, device=device)
    obs = rooms.reset().reshape(num_agents, hp.num_envs)
    shape = (hp.num_steps, num_agents, hp.num_envs)
    t0 = time.perf_counter()
    for _ in range(updates):
        buf = {k: [] for k in ("obs", "act", "rew", "term", "trunc", "final")}
        for _ in range(hp.num_steps):
            act = agents.act(obs)
            nxt, rew, term, trunc, final = rooms.step(act.reshape(-1))
            final_v = agents.value(final.reshape(obs.shape)) if trunc.any() else torch.zeros(obs.shape, device=device)
            for k, v in zip(buf, (obs, act, rew, term, trunc, final_v), strict=True):
                buf[k].append(v.reshape(obs.shape))
            obs = nxt.reshape(obs.shape)
        agents.update(*(torch.stack(buf[k]).reshape(shape) for k in buf), obs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return updates * num_agents * hp.num_envs * hp.num_steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=57)
    p.add_argument("--updates", type=int, default=50)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(1)
    dev = torch.device(args.device)
    batched = rate(args.agents, args.updates, dev)
    single = rate(1, args.updates, dev)
    print(f"device {dev}: batched {args.agents} agents {batched:,.0f} env steps/s; one agent's 10 envs at a time "
          f"{single:,.0f} env steps/s; ratio {batched / single:.1f}x; 57 tasks x 2.5M steps would take "
          f"{57 * 2.5e6 / batched / 60:.1f} min batched vs {57 * 2.5e6 / single / 60:.1f} min one at a time")


if __name__ == "__main__":
    main()
