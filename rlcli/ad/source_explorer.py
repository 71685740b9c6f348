"""Batched novelty explorers: an in-context learner that explores better than a random walk (an AD source).

The A2C source explores like a random walk until it first finds the goal, so an AD model distilled from it
can do no better before its first success (the issue measured: AD last 10 of 40 = 0.85, a random walk that
returns to a found goal = 0.88). This source is a learning algorithm whose early episodes explore well, so
that what AD distils is good exploration (Zisman et al. 2023, "Emergence of in-context reinforcement
learning from noise distillation", build such histories from a scripted demonstrator with decaying noise).

Each env stream is one learner with a memory that lasts across its episodes:

- the cells it has visited, and the cell where it found a reward (if it has);
- before a reward is found, every step heads for the nearest cell it has not visited (grid distance;
  ties between cells and between equally short moves broken at random), so it covers the room in about
  five 20-step episodes instead of the ~40 a random walk needs to find a corner;
- once a reward was found, every step heads straight for that cell (and stays on it where the episode goes
  on, the AD paper's variant);
- with probability epsilon a step is a uniform random action instead. Epsilon decays linearly from
  ``collect.noise_start`` to ``collect.noise_end`` over the stream's first ``collect.noise_episodes``
  episodes (noise distillation: the histories show a learner that also gets less noisy, and the model
  sees states off the clean path and how to recover from them).

The learner knows the room's geometry (moves on a grid, walls at the border), not the goal. Its behaviour is
a function of what it has observed in its own stream only, so a model that reads the stream can imitate it.

The interface is :class:`~rlcli.ad.source_a2c.BatchedA2C`'s, so :class:`~rlcli.ad.collect.Collection` runs
either: :meth:`tables` (here the explorer itself, with its memory), :meth:`action_noise` (one uniform per
step, seeded by the agent's seed and the update only, so shards draw what one process draws), ``act`` and
``observe`` at every step, and :meth:`update` (nothing to learn from gradients: it returns no losses).
"""

from __future__ import annotations

from typing import Any

import torch

from rlcli.ad.source_a2c import agent_uniforms
from rlcli.config.ad import CollectConfig


class BatchedExplorer:
    """N agents x B env streams of novelty explorers on a ``size`` x ``size`` room (``next_cell``: the room's
    (cells * actions,) table of the cell each move leads to, :attr:`DarkRoomBatch.next_cell`)."""

    def __init__(self, size: int, num_actions: int, next_cell: torch.Tensor, start_cell: int, cc: CollectConfig,
                 seeds: list[int], num_envs: int, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.size, self.num_actions, self.cc = size, num_actions, cc
        self.num_agents, self.num_envs = len(seeds), num_envs
        self.seeds = [int(s) for s in seeds]
        cells = torch.arange(size * size, device=self.device)
        rows, cols = cells.div(size, rounding_mode="floor"), cells % size
        # (cells, cells) grid distance: with walls only at the border, the fewest moves between two cells
        self.distance = ((rows[:, None] - rows[None, :]).abs() + (cols[:, None] - cols[None, :]).abs()).float()
        self.next_cell = next_cell.to(self.device).reshape(size * size, num_actions)  # (cells, actions)
        shape = (self.num_agents, num_envs)
        self.visited = torch.zeros(shape + (size * size,), dtype=torch.bool, device=self.device)
        self.visited[..., start_cell] = True
        self.goal = torch.full(shape, -1, dtype=torch.long, device=self.device)  # cell of the first reward
        self.episode = torch.zeros(shape, dtype=torch.long, device=self.device)  # episodes finished per stream

    # the BatchedA2C interface used by the collection ------------------------------------------------------
    def tables(self) -> BatchedExplorer:
        return self

    def action_noise(self, update: int, steps: int, batch: int) -> torch.Tensor:
        return agent_uniforms(self.seeds, update, steps, batch, self.device)  # the A2C source's seeding rule

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """No critic: zeros of obs's shape (the collection bootstraps nothing from it)."""
        return torch.zeros(obs.shape, device=self.device)

    def update(self, *rollout: torch.Tensor) -> dict[str, torch.Tensor]:
        """Nothing is learned by gradient: the explorer learns by its memory (:meth:`observe`)."""
        return {}

    # acting ----------------------------------------------------------------------------------------------
    def epsilon(self) -> torch.Tensor:
        """(N, B) probability of a random action in each stream's current episode."""
        cc = self.cc
        progress = (self.episode.float() / max(1, cc.noise_episodes)).clamp(max=1.0)
        return cc.noise_start + (cc.noise_end - cc.noise_start) * progress

    @torch.no_grad()
    def act(self, obs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """obs (N, B) cells, uniform (N, B) in [0, 1) -> actions (N, B). One uniform decides both whether
        the step is random (u < epsilon: action floor(5 u / epsilon)) and, otherwise, which of the best moves
        to take (the k-th of the tied ones, k from the rescaled u)."""
        eps = self.epsilon()
        random_action = (uniform / eps.clamp(min=1e-9) * self.num_actions).long().clamp(max=self.num_actions - 1)
        targets = self.next_cell[obs]  # (N, B, A) the cell each move leads to
        # distance from each cell to the nearest unvisited one: (N, B, cells)
        to_unvisited = torch.where(self.visited[..., None, :], torch.inf, self.distance).amin(-1)
        score = to_unvisited.gather(-1, targets)  # (N, B, A)
        known = self.goal >= 0
        to_goal = self.distance[targets, self.goal.clamp(min=0)[..., None]]  # (N, B, A)
        score = torch.where(known[..., None], to_goal, score)
        best = score == score.amin(-1, keepdim=True)  # (N, B, A) tied best moves
        rank = ((uniform - eps) / (1 - eps).clamp(min=1e-9)).clamp(0, 1 - 1e-6)
        k = (rank * best.sum(-1)).long()  # pick the k-th tied move
        order = best.long().cumsum(-1) - 1  # index of each best move among the best
        greedy = (best & (order == k[..., None])).long().argmax(-1)
        return torch.where(uniform < eps, random_action, greedy)

    @torch.no_grad()
    def observe(self, cell: torch.Tensor, reward: torch.Tensor, done: torch.Tensor) -> None:
        """After a step: ``cell`` (N, B) the cell the action led to (the final one of a finished episode),
        ``reward`` and ``done`` (N, B). Marks the cell visited, remembers where a reward was found, counts
        finished episodes."""
        self.visited.scatter_(-1, cell[..., None], True)
        self.goal = torch.where((reward > 0) & (self.goal < 0), cell, self.goal)
        self.episode += done.long()

    # checkpoints -----------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], list]:
        return {"visited": self.visited, "goal": self.goal, "episode": self.episode}, []

    def load_state(self, tensors: dict[str, Any], param_groups: list) -> None:
        for k in ("visited", "goal", "episode"):
            setattr(self, k, tensors[k].to(self.device).clone())
