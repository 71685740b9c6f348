"""Scripted DarkRoom baselines: the sweep finds every goal within its sweep episodes, the return agents go
straight back once they found it, and the random agents are reproducible per seed."""

import numpy as np
import pytest

from rlcli.ad.baselines import baseline_curves, baseline_returns, sweep_plan
from rlcli.envs.darkroom import num_tasks, task_goal

SEED_VARIANT = {"size": 9, "max_steps": 20, "terminate_on_goal": True}
PAPER_VARIANT = {"size": 9, "max_steps": 20, "terminate_on_goal": False}
TASKS = list(range(num_tasks()))


def _distance(task: int) -> int:
    row, col = task_goal(task)
    return abs(row - 4) + abs(col - 4)


def test_the_sweep_visits_every_cell_within_its_episodes():
    plan = sweep_plan(9, 20)
    assert len(plan) == 5 and all(len(actions) <= 20 for actions in plan)
    returns = baseline_returns("sweep_then_return", TASKS, 8, SEED_VARIANT)
    found_in = returns.argmax(1)  # the first episode with a reward
    assert (returns.max(1) == 1).all() and (found_in < len(plan)).all()  # every goal, within the sweep
    for row in range(len(TASKS)):  # once found, every later episode walks straight back to it
        assert (returns[row, found_in[row]:] == 1).all() and (returns[row, :found_in[row]] == 0).all()
    assert len(np.unique(found_in)) == len(plan)  # goals are found in every sweep episode, not all in one


def test_straight_back_in_the_paper_variant_collects_every_step_on_the_goal():
    returns = baseline_returns("sweep_then_return", TASKS, 8, PAPER_VARIANT)
    best = np.array([20 - _distance(task) + 1 for task in TASKS])  # reward on every step from arrival on
    np.testing.assert_array_equal(returns[:, -1], best)
    walk = baseline_returns("random_walk_then_return", TASKS, 30, PAPER_VARIANT, seeds=(3,))
    found = walk.max(1) > 0
    assert found.mean() > 0.5
    for row in np.flatnonzero(found):  # every episode after the one that found the goal: straight back
        first = int(np.argmax(walk[row] > 0))
        assert (walk[row, :first] == 0).all() and (walk[row, first + 1:] == best[row]).all()


@pytest.mark.parametrize("agent", ["random", "random_walk_then_return"])
def test_random_agents_are_reproducible_per_seed(agent):
    tasks = [0, 7, 40, 79]
    a = baseline_returns(agent, tasks, 6, SEED_VARIANT, seeds=(1, 2))
    assert a.shape == (8, 6) and set(np.unique(a)) <= {0.0, 1.0}
    np.testing.assert_array_equal(a, baseline_returns(agent, tasks, 6, SEED_VARIANT, seeds=(1, 2)))
    assert not np.array_equal(a[:4], baseline_returns(agent, tasks, 6, SEED_VARIANT, seeds=(3,)))


def test_the_baselines_rank_as_expected_on_every_task():
    curves = baseline_curves(TASKS, 20, SEED_VARIANT, seeds=(0,))
    last = {name: c[:, -5:].mean() for name, c in curves.items()}
    assert last["random"] < last["random_walk_then_return"] < last["sweep_then_return"] == 1.0
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_returns("greedy", TASKS, 2, SEED_VARIANT)
