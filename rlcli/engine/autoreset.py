"""The observations an env reached, seen past SAME_STEP autoreset.

Every vector env of rlcli's registry resets a finished env inside the same ``step`` call: the observation it
returns for that env is the new episode's first, and the last observation of the finished episode is in
``info["final_obs"][i]``. Learners that store what an action led to (DQN's replay buffer, RND's novelty of
the reached state) must use the latter.
"""

from __future__ import annotations

import numpy as np


def reached_observations(next_obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """(B, *obs_shape): ``info["final_obs"][i]`` where ``done[i]`` (the episode's last observation), else
    ``next_obs[i]``. ``next_obs`` itself when no episode ended, a copy otherwise (the env's array is not
    written)."""
    if not done.any():
        return next_obs
    reached = np.array(next_obs, copy=True)
    for i in np.flatnonzero(done):
        reached[i] = info["final_obs"][i]
    return reached
