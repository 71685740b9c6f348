"""Generalized Advantage Estimation (Schulman et al. 2016)."""

from __future__ import annotations

import torch


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_value: torch.Tensor,
                gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns, both (T, B).

    rewards, values, dones: (T, B); ``dones[t]`` is 1 when the episode ended after step t (the next
    observation starts a new episode, so nothing is bootstrapped across it; truncated episodes have their
    bootstrap value already folded into ``rewards[t]``). next_value: (B,) value of the observation after T.
    """
    num_steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(next_value)
    for t in reversed(range(num_steps)):
        following_value = next_value if t == num_steps - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * following_value * not_done - values[t]
        last_gae = delta + gamma * gae_lambda * not_done * last_gae
        advantages[t] = last_gae
    return advantages, advantages + values
