"""DarkRoom dynamics against hand-worked cases, both variants, and gymnasium's env checker."""

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from rlcli.envs.darkroom import DarkRoomBatch, DarkRoomEnv, DarkRoomVectorEnv, num_tasks, task_goal

STAY, UP, RIGHT, DOWN, LEFT = range(5)
CENTRE = 4 * 9 + 4

torch.set_num_threads(1)  # small tensors: one thread is fastest, and the machine is shared


def test_tasks_cover_every_cell_but_the_centre():
    goals = [task_goal(k) for k in range(num_tasks())]
    assert num_tasks() == 80
    assert len(set(goals)) == 80 and (4, 4) not in goals
    assert goals[0] == (0, 0) and goals[39] == (4, 3) and goals[40] == (4, 5) and goals[79] == (8, 8)
    with pytest.raises(ValueError):
        task_goal(80)


def test_walls_and_observation_is_the_cell():
    room = DarkRoomBatch.from_tasks([0])  # goal (0, 0)
    assert room.reset().tolist() == [CENTRE]
    cells = [int(room.step(torch.tensor([UP]))[0]) for _ in range(5)]
    assert cells == [31, 22, 13, 4, 4]  # the 5th move up hits the wall
    cells = [int(room.step(torch.tensor([RIGHT]))[0]) for _ in range(5)]
    assert cells == [5, 6, 7, 8, 8]
    assert int(room.step(torch.tensor([STAY]))[0]) == 8


def test_seed_variant_goal_terminates_with_reward_one():
    room = DarkRoomBatch.from_tasks([31], terminate_on_goal=True)  # task 31 = cell 31 = (3, 4)
    assert task_goal(31) == (3, 4)
    room.reset()
    obs, reward, term, trunc, final = room.step(torch.tensor([UP]))
    assert reward.tolist() == [1.0] and term.tolist() == [True] and trunc.tolist() == [False]
    assert final.tolist() == [31] and obs.tolist() == [CENTRE]  # reset in the same step
    assert room.t.tolist() == [0]


def test_paper_variant_rewards_every_step_on_the_goal():
    room = DarkRoomBatch.from_tasks([31], terminate_on_goal=False)
    room.reset()
    rewards, terms = [], []
    for a in (UP, STAY, STAY, DOWN, UP):
        _, r, term, _, _ = room.step(torch.tensor([a]))
        rewards.append(float(r))
        terms.append(bool(term))
    assert rewards == [1.0, 1.0, 1.0, 0.0, 1.0] and not any(terms)


@pytest.mark.parametrize("terminate", [True, False])
def test_time_limit_truncates_after_20_steps(terminate):
    room = DarkRoomBatch.from_tasks([0, 31], terminate_on_goal=terminate)
    room.reset()
    for step in range(1, 21):
        obs, r, term, trunc, final = room.step(torch.tensor([STAY, STAY]))
        assert trunc.tolist() == [step == 20, step == 20]
        assert not term.any()
    assert obs.tolist() == [CENTRE, CENTRE] and room.t.tolist() == [0, 0]
    # the paper variant truncates on the goal too, rewarding that last step
    room = DarkRoomBatch.from_tasks([31], terminate_on_goal=False)
    room.reset()
    room.step(torch.tensor([UP]))
    for _ in range(19):
        _, r, term, trunc, _ = room.step(torch.tensor([STAY]))
        assert r.tolist() == [1.0]
    assert trunc.tolist() == [True] and term.tolist() == [False]


@pytest.mark.parametrize("terminate", [True, False])
def test_gymnasium_env_checker_and_same_dynamics_as_the_batch(terminate):
    env = DarkRoomEnv(task=10, terminate_on_goal=terminate, render_mode="rgb_array")
    check_env(env, skip_render_check=False)
    assert env.render().shape == (144, 144, 3)
    rng = np.random.default_rng(0)
    room = DarkRoomBatch.from_tasks([10], terminate_on_goal=terminate)
    obs, _ = env.reset(seed=0)
    room.reset()
    for _ in range(300):
        a = int(rng.integers(5))
        obs, r, term, trunc, _ = env.step(a)
        nxt, r2, term2, trunc2, final = room.step(torch.tensor([a]))
        assert (obs, r, term, trunc) == (int(final[0]), float(r2[0]), bool(term2[0]), bool(trunc2[0]))
        if term or trunc:
            obs, _ = env.reset()
        assert obs == int(nxt[0])


def test_vector_env_autoresets_and_reports_final_obs():
    env = DarkRoomVectorEnv([31, 0])
    obs, _ = env.reset(seed=0)
    obs, r, term, trunc, info = env.step(np.array([UP, UP]))
    assert r.tolist() == [1.0, 0.0] and term.tolist() == [True, False]
    assert obs.tolist() == [CENTRE, 31] and info["final_obs"][0] == 31 and info["_final_obs"].tolist() == [True, False]
