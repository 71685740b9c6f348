"""In-context evaluation of an Algorithm Distillation model on DarkRoom tasks.

All tasks (times ``repeats``) run as one batch of rooms. The model acts by sampling from its action
distribution (greedy actions could not explore) in fresh episodes of each task, its context filling with
its own transitions across episodes; the return of every episode is kept, so ``returns[:, e]`` is the
in-context learning curve at episode index e. Generation uses the model's KV-cache, whose logits equal a
plain forward over the context as training encoded it (see :mod:`rlcli.nets.ad_transformer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from rlcli.envs.darkroom import DarkRoomBatch
from rlcli.nets.ad_transformer import ADTransformer


@dataclass
class InContextRollout:
    tasks: list[int]  # (B,) task of each row
    returns: np.ndarray  # (B, E) return of each of the first E episodes
    lengths: np.ndarray  # (B, E)
    cells: np.ndarray  # (B, steps) the agent's cell after every step, before any reset (for path GIFs)
    dones: np.ndarray  # (B, steps) the episode ended with this step


@torch.no_grad()
def run_in_context(model: ADTransformer, tasks: list[int], episodes: int, env_params: dict,
                   seed: int = 0, device: torch.device | str = "cpu",
                   on_finished: Callable[[int], None] | None = None,
                   row_seeds: list[int] | None = None, temperature: float = 1.0) -> InContextRollout:
    """Play ``episodes`` episodes of each of ``tasks`` (one batch); see the module docstring.
    ``on_finished`` is called with the number of episodes finished over all rows when it grows.
    With ``row_seeds`` (one per row) each row samples its actions from its own generator, so a row plays
    the same whichever other rows share its batch (how :mod:`rlcli.ad.ray_eval` splits an evaluation);
    otherwise one generator seeded with ``seed`` serves the whole batch. Actions are sampled from
    softmax(logits / ``temperature``)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    rooms = DarkRoomBatch.from_tasks(tasks, size=env_params["size"], max_steps=env_params["max_steps"],
                                     terminate_on_goal=env_params["terminate_on_goal"], device=device)
    b = len(tasks)
    max_steps = episodes * env_params["max_steps"]
    gen = torch.Generator(device=device).manual_seed(seed)
    if row_seeds is not None and len(row_seeds) != len(tasks):
        raise ValueError(f"row_seeds has {len(row_seeds)} seeds for {len(tasks)} rows")
    row_gens = None if row_seeds is None else [torch.Generator(device=device).manual_seed(int(s)) for s in row_seeds]
    obs = rooms.reset()
    cache = model.new_cache()
    cells = torch.zeros(b, max_steps, dtype=torch.long, device=device)
    dones = torch.zeros(b, max_steps, dtype=torch.bool, device=device)
    returns = torch.zeros(b, episodes, device=device)
    lengths = torch.zeros(b, episodes, dtype=torch.long, device=device)
    finished = torch.zeros(b, dtype=torch.long, device=device)  # episodes completed per row
    ep_ret = torch.zeros(b, device=device)
    ep_len = torch.zeros(b, dtype=torch.long, device=device)
    rows = torch.arange(b, device=device)
    steps = 0
    while steps < max_steps and bool((finished < episodes).any()):
        t = rooms.t.clone()
        logits = model.step_state(obs, t, cache)
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        if row_gens is None:
            action = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        else:  # inverse-CDF sampling, one uniform per row from that row's generator
            u = torch.cat([torch.rand(1, generator=g, device=device) for g in row_gens])
            action = (probs.cumsum(-1) < u[:, None]).sum(-1).clamp(max=probs.shape[-1] - 1)
        obs, reward, term, trunc, final_obs = rooms.step(action)
        model.step_outcome(action, reward.long(), t, cache, final_obs)  # final_obs: the cell before any reset
        done = term | trunc
        ep_ret += reward
        ep_len += 1
        record = done & (finished < episodes)
        idx = finished.clamp(max=episodes - 1)
        returns[rows[record], idx[record]] = ep_ret[record]
        lengths[rows[record], idx[record]] = ep_len[record]
        finished += done.long()
        if on_finished is not None and bool(done.any()):
            on_finished(int(finished.clamp(max=episodes).sum()))
        ep_ret *= ~done
        ep_len *= ~done
        cells[:, steps] = final_obs
        dones[:, steps] = done
        steps += 1
    model.train(was_training)
    return InContextRollout(list(tasks), returns.cpu().numpy(), lengths.cpu().numpy(),
                            cells[:, :steps].cpu().numpy(), dones[:, :steps].cpu().numpy())
