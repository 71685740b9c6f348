"""MiniGrid Dynamic-Obstacles with layout variation, and an observation encoding small nets learn from.

The task is minigrid's ``DynamicObstaclesEnv`` (the seed's MiniGrid env): reach the green goal in the
bottom-right corner of a walled room while balls move at random; moving into a ball or a wall ends the
episode with reward -1, reaching the goal gives ``1 - 0.9 * steps / max_steps``. Actions: left, right,
forward. ``variation_level`` v in [0, 1] sets the layout: grid size ``6 + round(6 v)`` (6 to 12) and
``2 + round(6 v)`` balls (2 to 8; minigrid's own cap of size/2 + 1 balls is lifted so level 1 has 8).

Observation (float32, shape (249,)): the agent's egocentric 7x7 view one-hot encoded over the five cell
kinds this task has (unseen, empty, wall, ball, goal), 245 values, then its compass direction one-hot (4).

Why the seed's DQN failed here (-0.09), and what fixed it. A uniformly random policy crashes in 99.2% of
episodes and reaches the goal in 0.8% (benchmarks/minigrid_dqn.py), so early epsilon-greedy data mostly
teaches "moving is lethal" and a learner that cannot tell the safe cells apart settles on turning in place
(return 0 at the 100-step limit; a few crashes make the seed's -0.09). With the seed's observation (the 49
object ids of the view divided by 10, no direction) DQN ends exactly there: greedy return 0.00 after 200k
steps. With this one-hot view plus compass, the same DQN reaches 0.7 (1-step) and 0.9 (5-step returns, the
preset) in 200k steps: the kind of the cell in front, which decides whether "forward" crashes, is one input
of its own instead of a value on a shared scale (empty 0.1, wall 0.2, ball 0.6, goal 0.8).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

DEFAULT_MAX_STEPS = 100  # the seed's MiniGrid episode limit
VIEW = 7
CELL_KINDS = (0, 1, 2, 6, 8)  # minigrid OBJECT_TO_IDX: unseen, empty, wall, ball, goal
OBS_DIM = VIEW * VIEW * len(CELL_KINDS) + 4


def minigrid_layout(variation_level: float) -> dict[str, int]:
    """Grid size (walls included) and number of moving balls at a variation level in [0, 1]."""
    v = float(variation_level)
    return {"size": 6 + int(round(6 * v)), "n_obstacles": 2 + int(round(6 * v))}


_KIND_INDEX = np.zeros(11, dtype=np.int64)  # minigrid object id -> index into CELL_KINDS
for _i, _kind in enumerate(CELL_KINDS):
    _KIND_INDEX[_kind] = _i
_WALL = CELL_KINDS.index(2)
_EMPTY = CELL_KINDS.index(1)


def _env_class():
    from minigrid.core.constants import OBJECT_TO_IDX
    from minigrid.envs.dynamicobstacles import DynamicObstaclesEnv

    class VariedDynamicObstaclesEnv(DynamicObstaclesEnv):
        """DynamicObstaclesEnv whose observation is the one-hot egocentric view plus direction.

        The view is the one minigrid computes (a 7x7 window in front of the agent, rotated so the agent
        faces up from the bottom-middle cell, walls beyond the grid; this env sees through walls), built
        with numpy instead of minigrid's per-cell Grid copies, which made stepping ~10x slower.
        """

        def __init__(self, layout: dict[str, int], max_steps: int, render_mode: str | None = None,
                     encoding: str = "onehot"):
            super().__init__(size=layout["size"], n_obstacles=layout["n_obstacles"], max_steps=max_steps,
                             render_mode=render_mode)
            self.n_obstacles = layout["n_obstacles"]  # lift minigrid's cap (size / 2 + 1 balls)
            self.encoding = encoding
            dim = OBS_DIM if encoding == "onehot" else VIEW * VIEW
            self.observation_space = gym.spaces.Box(0.0, 1.0, (dim,), dtype=np.float32)

        def view_kinds(self) -> np.ndarray:
            """(7, 7) indices into CELL_KINDS of the agent's view, [x, y] as minigrid's image."""
            w, h = self.grid.width, self.grid.height
            full = np.full((w + 2 * VIEW, h + 2 * VIEW), _WALL, dtype=np.int64)
            kinds = [_EMPTY if c is None else _KIND_INDEX[OBJECT_TO_IDX[c.type]] for c in self.grid.grid]
            full[VIEW:VIEW + w, VIEW:VIEW + h] = np.asarray(kinds).reshape(h, w).T
            top_x, top_y, _, _ = self.get_view_exts()
            view = full[VIEW + top_x:2 * VIEW + top_x, VIEW + top_y:2 * VIEW + top_y]
            return np.rot90(view, -(self.agent_dir + 1))

        def gen_obs(self) -> np.ndarray:
            if self.encoding == "index":  # the seed's encoding: object ids / 10 of the 7x7 view, no direction
                return (np.asarray(CELL_KINDS)[self.view_kinds()].reshape(-1) / 10.0).astype(np.float32)
            out = np.zeros(OBS_DIM, dtype=np.float32)
            out[np.arange(VIEW * VIEW) * len(CELL_KINDS) + self.view_kinds().reshape(-1)] = 1.0
            out[VIEW * VIEW * len(CELL_KINDS) + int(self.agent_dir)] = 1.0
            return out

    return VariedDynamicObstaclesEnv


def make_minigrid(variation_level: float = 0.0, render_mode: str | None = None,
                  max_episode_steps: int = DEFAULT_MAX_STEPS, encoding: str = "onehot") -> gym.Env:
    """A single Dynamic-Obstacles env at ``variation_level``; ``encoding`` "onehot" (rlcli's) or "index"
    (the seed's: the 49 object ids of the view / 10, no direction; kept for benchmarks/minigrid_dqn.py)."""
    return _env_class()(minigrid_layout(variation_level), max_episode_steps or DEFAULT_MAX_STEPS, render_mode,
                        encoding)


def make_minigrid_vec(variation_level: float, num_envs: int, max_episode_steps: int,
                      encoding: str = "onehot") -> gym.vector.VectorEnv:
    """``num_envs`` copies in a SyncVectorEnv with SAME_STEP autoreset (``info["final_obs"]`` on done)."""
    return gym.vector.SyncVectorEnv(
        [lambda: make_minigrid(variation_level, None, max_episode_steps, encoding) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
