"""DarkRoom (Laskin et al. 2022, Algorithm Distillation): a 9x9 grid with an invisible goal.

The agent starts in the centre cell and sees only its own cell index ``row * size + col`` (never the goal).
Actions: 0 stay, 1 up, 2 right, 3 down, 4 left; a move into a wall leaves the agent where it is.
Two variants (``terminate_on_goal``):

- ``True`` (the seed's): reward 1 on reaching the goal, which ends the episode (terminated);
- ``False`` (the AD paper's): reward 1 on every step that ends on the goal; the episode runs to the limit.

Episodes are truncated after ``max_steps`` (default 20) steps. The goal comes from a task id: task ``k`` is
the k-th cell in row-major order with the centre skipped (the centre would be won at once), so a 9x9
room has 80 tasks.

:class:`DarkRoomBatch` steps B environments, each with its own goal, with a handful of torch ops on CPU or
GPU (the A2C collector and the in-context evaluation use it). :class:`DarkRoomEnv` is the gymnasium
single-env view of the same dynamics and :class:`DarkRoomVectorEnv` the registry's vector env
(SAME_STEP autoreset, ``info["final_obs"]``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

SIZE = 9
MAX_STEPS = 20
NUM_ACTIONS = 5
# (d_row, d_col) of stay, up, right, down, left
MOVES = ((0, 0), (-1, 0), (0, 1), (1, 0), (0, -1))


def num_tasks(size: int = SIZE) -> int:
    """Tasks of a ``size`` x ``size`` room: every cell but the centre."""
    return size * size - 1


def task_goal(task: int, size: int = SIZE) -> tuple[int, int]:
    """(row, col) of task ``task``'s goal: the task-th non-centre cell in row-major order."""
    if not 0 <= task < num_tasks(size):
        raise ValueError(f"task must be in [0, {num_tasks(size)}), got {task}")
    centre = (size // 2) * size + size // 2
    cell = task if task < centre else task + 1
    return divmod(cell, size)


class DarkRoomBatch:
    """B DarkRoom environments stepped together; state lives in torch tensors on ``device``.

    goals: (B, 2) long tensor of (row, col). ``step`` resets finished envs in the same call (the returned
    observation is the new episode's first); ``final_obs`` holds the last observation of finished episodes.
    """

    def __init__(self, goals: torch.Tensor, size: int = SIZE, max_steps: int = MAX_STEPS,
                 terminate_on_goal: bool = True, device: torch.device | str = "cpu"):
        self.size, self.max_steps, self.terminate_on_goal = size, max_steps, terminate_on_goal
        self.device = torch.device(device)
        self.goals = torch.as_tensor(goals, dtype=torch.long, device=self.device).reshape(-1, 2)
        self.num_envs = self.goals.shape[0]
        # the state is the cell index (the observation); a move is one gather from the (cells x actions)
        # table of next cells, so a step is a handful of elementwise ops on (B,) tensors (the A2C
        # collection steps 10^8 of them)
        rows, cols = torch.arange(size * size).div(size, rounding_mode="floor"), torch.arange(size * size) % size
        moves = torch.tensor(MOVES, dtype=torch.long)
        next_rows = (rows[:, None] + moves[:, 0]).clamp(0, size - 1)
        next_cols = (cols[:, None] + moves[:, 1]).clamp(0, size - 1)
        self.next_cell = (next_rows * size + next_cols).reshape(-1).to(self.device)  # [cell * A + action]
        self.goal_cell = self.goals[:, 0] * size + self.goals[:, 1]
        self.start_cell = (size // 2) * size + size // 2
        self.cell = torch.full((self.num_envs,), self.start_cell, dtype=torch.long, device=self.device)
        self.t = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)  # steps taken this episode

    @classmethod
    def from_tasks(cls, tasks, **kwargs) -> DarkRoomBatch:
        size = kwargs.get("size", SIZE)
        goals = torch.tensor([task_goal(int(k), size) for k in tasks], dtype=torch.long)
        return cls(goals, **kwargs)

    @property
    def pos(self) -> torch.Tensor:
        """(B, 2) long (row, col) of every agent."""
        return torch.stack((self.cell.div(self.size, rounding_mode="floor"), self.cell % self.size), dim=1)

    @pos.setter
    def pos(self, value: torch.Tensor) -> None:
        value = torch.as_tensor(value, dtype=torch.long, device=self.device).reshape(-1, 2)
        self.cell = value[:, 0] * self.size + value[:, 1]

    def obs(self) -> torch.Tensor:
        """(B,) long cell indices."""
        return self.cell.clone()

    def reset(self) -> torch.Tensor:
        self.cell = torch.full((self.num_envs,), self.start_cell, dtype=torch.long, device=self.device)
        self.t.zero_()
        return self.obs()

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                    torch.Tensor]:
        """actions (B,) in [0, 5) -> (obs, reward float32, terminated, truncated, final_obs), each (B,).

        The returned tensors are new ones (the room's state is never handed out to be changed in place)."""
        actions = torch.as_tensor(actions, dtype=torch.long, device=self.device)
        final_obs = self.next_cell[self.cell * NUM_ACTIONS + actions]
        t = self.t + 1
        on_goal = final_obs == self.goal_cell
        reward = on_goal.float()
        terminated = on_goal if self.terminate_on_goal else torch.zeros_like(on_goal)
        truncated = (t >= self.max_steps) & ~terminated
        done = terminated | truncated
        self.cell = final_obs.masked_fill(done, self.start_cell)
        self.t = t.masked_fill_(done, 0)
        return self.cell.clone(), reward, terminated, truncated, final_obs

    def state(self) -> dict[str, torch.Tensor]:
        return {"pos": self.pos, "t": self.t.clone()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.pos = state["pos"]
        self.t = torch.as_tensor(state["t"], dtype=torch.long, device=self.device).clone()


def render_room(pos: tuple[int, int], goal: tuple[int, int], size: int = SIZE, cell: int = 16,
                trail: list[tuple[int, int]] | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 picture: dark floor, green goal, grey cells of ``trail``, white agent."""
    img = np.full((size * cell, size * cell, 3), 30, dtype=np.uint8)
    img[::cell, :] = img[:, ::cell] = 60  # grid lines

    def paint(rc: tuple[int, int], colour: tuple[int, int, int]) -> None:
        r, c = rc
        img[r * cell + 2:(r + 1) * cell - 1, c * cell + 2:(c + 1) * cell - 1] = colour

    for rc in trail or []:
        paint(rc, (90, 90, 140))
    paint(goal, (40, 200, 80))
    paint(pos, (250, 250, 250))
    return img


class DarkRoomEnv(gym.Env):
    """The gymnasium single-env view of :class:`DarkRoomBatch` (one env, goal of ``task``)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, task: int = 0, size: int = SIZE, max_steps: int = MAX_STEPS,
                 terminate_on_goal: bool = True, render_mode: str | None = None):
        self.task, self.render_mode = task, render_mode
        self.goal = task_goal(task, size)
        self.room = DarkRoomBatch(torch.tensor([self.goal]), size, max_steps, terminate_on_goal)
        self.observation_space = gym.spaces.Discrete(size * size)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[int, dict]:
        super().reset(seed=seed)  # the dynamics are deterministic; the seed only feeds self.np_random
        return int(self.room.reset()[0]), {"time_step": 0}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in [0, {NUM_ACTIONS}), got {action!r}")
        t = int(self.room.t[0])
        _, reward, terminated, truncated, final_obs = self.room.step(torch.tensor([int(action)]))
        if terminated[0] or truncated[0]:  # the episode is over: keep showing where it ended
            self.room.pos = torch.tensor([divmod(int(final_obs[0]), self.room.size)])
            self.room.t[0] = t + 1
        return int(final_obs[0]), float(reward[0]), bool(terminated[0]), bool(truncated[0]), {"time_step": t + 1}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        pos = tuple(int(x) for x in self.room.pos[0])
        return render_room(pos, self.goal, self.room.size)


class DarkRoomVectorEnv(VectorEnv):
    """``num_envs`` DarkRooms for the training loop; env i has task ``tasks[i]``."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, tasks: list[int], max_steps: int = MAX_STEPS, terminate_on_goal: bool = True):
        self.num_envs = len(tasks)
        self.room = DarkRoomBatch.from_tasks(tasks, max_steps=max_steps, terminate_on_goal=terminate_on_goal)
        self.single_observation_space = gym.spaces.Discrete(SIZE * SIZE)
        self.single_action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        return self.room.reset().numpy(), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, reward, terminated, truncated, final_obs = self.room.step(torch.as_tensor(np.asarray(actions)))
        done = (terminated | truncated).numpy()
        info: dict[str, Any] = {}
        if done.any():
            info["final_obs"] = np.where(done, final_obs.numpy(), 0)
            info["_final_obs"] = done
        return obs.numpy(), reward.numpy(), terminated.numpy(), truncated.numpy(), info

    def get_state(self) -> dict[str, Any]:
        return {k: v.numpy() for k, v in self.room.state().items()}

    def set_state(self, saved: dict[str, Any]) -> None:
        self.room.load_state(saved)
