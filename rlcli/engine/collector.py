"""Vectorized on-policy rollouts into a :class:`RolloutBuffer` (shared by PPO, VAPOR and RND)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlcli.engine.rollout_buffer import RolloutBuffer, base_experience_spec
from rlcli.engine.timing import PhaseTimer
from rlcli.nets.policies import ActorCritic, TensorSpec


def torch_dtype(np_dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=np_dtype)).dtype


PIN_BYTES = 1 << 16  # arrays this large (image observations of a few envs) go through pinned memory


def numpy_to_device(array, device: torch.device) -> torch.Tensor:
    """An env's numpy output as a tensor on ``device``, sharing memory on the CPU.

    ``torch.from_numpy`` costs about a third of ``torch.as_tensor(array, device=...)``, which parses its
    arguments on every call; the collector converts three arrays per env step.
    """
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # from_numpy warns on read-only arrays (some envs return views)
        array = array.copy()
    tensor = torch.from_numpy(array)
    if device.type == "cpu":
        return tensor
    if array.nbytes >= PIN_BYTES:
        # image observations: copy into page-locked memory so the host-to-device copy is a true async DMA
        # (from pageable memory, non_blocking still waits for a staging copy). pin_memory() draws from torch's
        # caching host allocator, which records the copy's stream and never hands the block out again before
        # the copy has finished, so nothing here can overwrite data still in flight.
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


class RolloutCollector:
    """Steps ``env`` with ``policy`` for ``num_steps`` per env and fills a rollout buffer.

    Truncated episodes (time limits) are bootstrapped: gamma * V(final observation) is added to the last
    reward, so GAE can treat every episode end alike. Only ``truncated and not terminated`` bootstraps (SB3's
    rule): an env may report both on one step (gymnasium's MiniGrid does when the goal or a collision falls
    on the last allowed step), and a terminal state has no future value. Finished episodes' undiscounted
    returns are tracked.

    Host-device synchronisation per env step (what remains on a GPU, item by item):

    - ``step.action.cpu().numpy()``: the one sync; the envs step in numpy on the host and need the actions;
    - ``bootstrap.any()``, ``done.any()``, ``np.flatnonzero`` and the episode bookkeeping read numpy arrays the
      env returned: host only, no sync;
    - observations, rewards and dones go to the device with ``non_blocking=True`` (image observations from
      pinned memory), and V(final observation) is added on the device: no sync;
    - the bootstrap index tensor is built from numpy on the host and copied (a small async copy).
    """

    def __init__(self, env, policy: ActorCritic, num_steps: int, gamma: float, device: torch.device, seed: int,
                 extra_spec: dict[str, TensorSpec] | None = None):
        self.env, self.policy, self.gamma, self.device = env, policy, gamma, device
        self.num_envs = env.num_envs
        obs_space = env.single_observation_space
        spec = {**base_experience_spec(obs_space.shape, torch_dtype(obs_space.dtype)),
                **policy.experience_spec(), **(extra_spec or {})}
        self.buffer = RolloutBuffer(spec, num_steps, self.num_envs, device)
        obs, _ = env.reset(seed=seed)
        self.next_obs = numpy_to_device(obs, device)
        self.episode_return = np.zeros(self.num_envs, dtype=np.float64)
        self.episode_length = np.zeros(self.num_envs, dtype=np.int64)

    @torch.no_grad()  # rollouts never need gradients (one context for the whole rollout, not one per step)
    def collect(self, timer: PhaseTimer, on_step=None) -> tuple[list[float], list[int], torch.Tensor]:
        """Fill the buffer; returns (finished episode returns, their lengths, V(next_obs) (B,)).

        Each step's values form a row (key -> (B, ...) tensor); the rows are stacked into the buffer once at
        the end, which costs far less than writing every key at every step. ``on_step(row, step, next_obs,
        info)`` may read and change the row and add keys of its own (RND's intrinsic rewards).
        """
        finished_returns: list[float] = []
        finished_lengths: list[int] = []
        buffer, policy = self.buffer, self.policy
        rows: dict[str, list[torch.Tensor]] = {k: [] for k in buffer.spec}
        for _ in range(buffer.num_steps):
            with timer.phase("inference"):
                obs = self.next_obs
                step = policy.act(obs)
            with timer.phase("env"):
                next_obs, reward, terminated, truncated, info = self.env.step(step.action.cpu().numpy())
            done = terminated | truncated
            self.episode_return += reward
            self.episode_length += 1
            reward_t = numpy_to_device(np.asarray(reward, dtype=np.float32), self.device)  # may share reward's memory
            bootstrap = truncated & ~terminated
            if bootstrap.any():
                with timer.phase("inference"):
                    idx = np.flatnonzero(bootstrap)
                    final_obs = np.stack([info["final_obs"][i] for i in idx])
                    final_value = policy.value(torch.as_tensor(final_obs, device=self.device))
                    reward_t = reward_t.clone()  # never write into the env's reward array
                    reward_t[torch.as_tensor(idx, device=self.device)] += self.gamma * final_value
            if done.any():
                for i in np.flatnonzero(done):
                    finished_returns.append(float(self.episode_return[i]))
                    finished_lengths.append(int(self.episode_length[i]))
                self.episode_return[done] = 0.0
                self.episode_length[done] = 0
            self.next_obs = numpy_to_device(next_obs, self.device)
            row = {"obs": obs, "actions": step.action, "logprobs": step.logprob, "values": step.value,
                   "rewards": reward_t, "dones": numpy_to_device(done.astype(np.float32), self.device),
                   **step.extras}
            if on_step is not None:
                on_step(row, step, self.next_obs, info)
            for k, v in row.items():
                rows[k].append(v)
        for k, values in rows.items():
            if values:
                buffer.data[k].copy_(torch.stack(values))  # (T, B, ...); copy_ casts to the spec's dtype
        with timer.phase("inference"):
            next_value = policy.value(self.next_obs).float()  # bf16 under run.precision=bf16; GAE runs in fp32
        return finished_returns, finished_lengths, next_value

    # -- checkpoint state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"next_obs": self.next_obs, "episode_return": self.episode_return,
                               "episode_length": self.episode_length}
        if hasattr(self.env, "get_state"):
            out["env"] = self.env.get_state()
        return out

    def load_state(self, saved: dict[str, Any], reseed: int) -> None:
        """Restore; an env that cannot save its state starts fresh episodes seeded with ``reseed``."""
        if "env" in saved and hasattr(self.env, "set_state"):
            self.env.set_state(saved["env"])
            self.next_obs = torch.as_tensor(saved["next_obs"], device=self.device)
            self.episode_return = np.asarray(saved["episode_return"], dtype=np.float64).copy()
            self.episode_length = np.asarray(saved["episode_length"], dtype=np.int64).copy()
        else:
            obs, _ = self.env.reset(seed=reseed)
            self.next_obs = torch.as_tensor(obs, device=self.device)
