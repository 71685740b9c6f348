"""Generalized Advantage Estimation (Schulman et al. 2016)."""

from __future__ import annotations

import numpy as np
import torch


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_value: torch.Tensor,
                gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns, both (T, B), on the inputs' device and in their dtype.

    rewards, values, dones: (T, B); ``dones[t]`` is 1 when the episode ended after step t (the next
    observation starts a new episode, so nothing is bootstrapped across it; truncated episodes have their
    bootstrap value already folded into ``rewards[t]``). next_value: (B,) value of the observation after T.

    The backward recursion runs in numpy on the CPU: it is T small steps, each a few ops on B numbers,
    and a numpy op costs a fraction of a torch op's dispatch (5-10x faster for T=128, B=4).
    """
    device, dtype = rewards.device, rewards.dtype
    # .float(): values come in bfloat16 under run.precision=bf16, which numpy has no type for
    r, v, d = (x.detach().float().cpu().numpy() for x in (rewards, values, dones))
    following_value = np.concatenate([v[1:], next_value.detach().float().cpu().numpy()[None]])  # (T, B) V(s_{t+1})
    not_done = 1.0 - d
    deltas = r + gamma * following_value * not_done - v  # (T, B) one-step TD errors
    discounts = gamma * gae_lambda * not_done
    advantages = np.empty_like(deltas)
    last_gae = np.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        last_gae = deltas[t] + discounts[t] * last_gae
        advantages[t] = last_gae
    adv = torch.from_numpy(advantages).to(device=device, dtype=dtype)
    return adv, adv + values
