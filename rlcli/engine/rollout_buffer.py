"""The on-policy rollout buffer, allocated from an experience spec.

The base spec holds what every actor-critic learner stores; policies (and learners such as RND) add keys
through ``experience_spec()`` and the buffer allocates them with no change to the loop or the update.
"""

from __future__ import annotations

import torch

from rlcli.nets.policies import TensorSpec


def base_experience_spec(obs_shape: tuple[int, ...], obs_dtype: torch.dtype) -> dict[str, TensorSpec]:
    return {
        "obs": TensorSpec(tuple(obs_shape), obs_dtype),
        "actions": TensorSpec((), torch.int64),
        "logprobs": TensorSpec(()),
        "values": TensorSpec(()),
        "rewards": TensorSpec(()),
        "dones": TensorSpec(()),  # 1.0 where the episode ended (terminated or truncated) after this step
    }


class RolloutBuffer:
    """Storage of shape (T, B, *shape) for every key of the spec."""

    def __init__(self, spec: dict[str, TensorSpec], num_steps: int, num_envs: int, device: torch.device):
        self.spec = dict(spec)
        self.num_steps, self.num_envs = num_steps, num_envs
        self.data = {k: torch.zeros((num_steps, num_envs, *s.shape), dtype=s.dtype, device=device)
                     for k, s in self.spec.items()}

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.data[key]

    def add(self, t: int, **values: torch.Tensor) -> None:
        for k, v in values.items():
            self.data[k][t] = v

    def flat(self, extra: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Every key reshaped to (T * B, *shape), plus ``extra`` tensors of shape (T, B, ...)."""
        items = {**self.data, **(extra or {})}
        return {k: v.reshape(self.num_steps * self.num_envs, *v.shape[2:]) for k, v in items.items()}
