"""Scripted agents that put an in-context DarkRoom evaluation in context, played on the same tasks.

Each sees what an AD model sees (its own cell and the rewards) and keeps what it learns across episodes:

- ``"random"``: uniform random actions (what an agent that learns nothing gets);
- ``"random_walk_then_return"``: uniform random actions until the goal is found, then in every later
  episode straight to it (rows first, then columns) and, where the episode goes on (the AD paper's
  variant), staying on it; a simple in-context learner that explores like a random walk;
- ``"sweep_then_return"``: a fixed sweep that visits every cell within its first few episodes
  (:func:`sweep_plan`), then straight back as above: about the best an agent that does not know the goal
  can do, an upper bound for in-context exploration.

Rows are ``seeds`` x ``tasks`` (row ``i * len(tasks) + j`` is seed ``seeds[i]`` on task ``tasks[j]``); the
result holds every row's return per episode, the curve an in-context evaluation plots.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rlcli.envs.darkroom import MOVES, DarkRoomBatch

BASELINES = ("random", "random_walk_then_return", "sweep_then_return")
STAY, UP, RIGHT, DOWN, LEFT = range(5)


def sweep_plan(size: int, max_steps: int) -> list[list[int]]:
    """Actions of each episode of a sweep that visits every cell of a ``size`` x ``size`` room, every
    episode starting in the centre and lasting at most ``max_steps`` steps: each step heads for the nearest
    cell not yet visited (ties: the first in row-major order), so no step is wasted on an empty search.
    Returns one action list per episode; their number is how many episodes the sweep needs."""
    centre = (size // 2, size // 2)
    unvisited = {(r, c) for r in range(size) for c in range(size)} - {centre}
    plan: list[list[int]] = []
    while unvisited:
        pos, actions = centre, []
        while len(actions) < max_steps and unvisited:
            target = min(unvisited, key=lambda rc: (abs(rc[0] - pos[0]) + abs(rc[1] - pos[1]), rc))
            action = toward(pos, target)
            pos = (pos[0] + MOVES[action][0], pos[1] + MOVES[action][1])
            unvisited.discard(pos)
            actions.append(action)
        plan.append(actions)
    return plan


def toward(pos: tuple[int, int], goal: tuple[int, int]) -> int:
    """The action that takes one step from ``pos`` straight toward ``goal`` (rows first); STAY on it."""
    if pos[0] != goal[0]:
        return UP if goal[0] < pos[0] else DOWN
    if pos[1] != goal[1]:
        return LEFT if goal[1] < pos[1] else RIGHT
    return STAY


def baseline_returns(agent: str, tasks: Sequence[int], episodes: int, env_params: dict,
                     seeds: Sequence[int] = (0,)) -> np.ndarray:
    """Return of each of the first ``episodes`` episodes of ``agent`` (one of :data:`BASELINES`) on each
    task, one row per (seed, task): (len(seeds) * len(tasks), episodes). ``env_params``: ``size``,
    ``max_steps``, ``terminate_on_goal`` (as a histories file stores them)."""
    if agent not in BASELINES:
        raise ValueError(f"unknown baseline '{agent}'; choose one of {', '.join(BASELINES)}")
    return np.concatenate([_play(agent, list(tasks), episodes, env_params, seed) for seed in seeds])


def baseline_curves(tasks: Sequence[int], episodes: int, env_params: dict,
                    seeds: Sequence[int] = (0,)) -> dict[str, np.ndarray]:
    """:func:`baseline_returns` of every baseline: name -> (len(seeds) * len(tasks), episodes)."""
    return {agent: baseline_returns(agent, tasks, episodes, env_params, seeds) for agent in BASELINES}


def _toward_all(rows: np.ndarray, cols: np.ndarray, goal_rows: np.ndarray, goal_cols: np.ndarray) -> np.ndarray:
    """:func:`toward` for arrays of positions and goals."""
    return np.select([goal_rows < rows, goal_rows > rows, goal_cols < cols, goal_cols > cols],
                     [UP, DOWN, LEFT, RIGHT], STAY)


def _play(agent: str, tasks: list[int], episodes: int, env_params: dict, seed: int) -> np.ndarray:
    size, max_steps = env_params["size"], env_params["max_steps"]
    rooms = DarkRoomBatch.from_tasks(tasks, size=size, max_steps=max_steps,
                                     terminate_on_goal=env_params["terminate_on_goal"])
    rng = np.random.default_rng(seed)
    plan = np.full((1, max_steps), STAY, dtype=np.int64)  # episode x step; STAY once the sweep is done
    if agent == "sweep_then_return":
        sweep = sweep_plan(size, max_steps)
        plan = np.full((len(sweep) + 1, max_steps), STAY, dtype=np.int64)
        for e, actions in enumerate(sweep):
            plan[e, :len(actions)] = actions
    b = len(tasks)
    rows = np.arange(b)
    returns = np.zeros((b, episodes))
    episode = np.zeros(b, dtype=np.int64)  # episodes finished per row
    goal = np.full((b, 2), -1, dtype=np.int64)  # (row, col) where a reward was found; -1 = not yet
    cells = rooms.reset().numpy()
    while (episode < episodes).any():
        actions = rng.integers(0, 5, size=b)
        if agent == "sweep_then_return":
            actions = plan[np.minimum(episode, len(plan) - 1), rooms.t.numpy()]
        if agent != "random":
            known = goal[:, 0] >= 0
            straight = _toward_all(cells // size, cells % size, goal[:, 0], goal[:, 1])
            actions = np.where(known, straight, actions)
        obs, reward, terminated, truncated, final_obs = rooms.step(torch.from_numpy(actions))
        reward, done, final = reward.numpy(), (terminated | truncated).numpy(), final_obs.numpy()
        found = reward > 0
        goal[found] = np.stack([final[found] // size, final[found] % size], axis=1)
        live = episode < episodes
        returns[rows[live], episode[live]] += reward[live]
        episode += done
        cells = obs.numpy()
    return returns
