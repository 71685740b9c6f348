"""Pieces that exist once and serve several learners: the reached observation past autoreset, the Nature CNN's
width, the parsed technique, and RND's predictor inside PPO's optimizer and gradient clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rlcli
from rlcli.config.fields import ConfigError
from rlcli.engine.autoreset import reached_observations
from rlcli.nets.cnn import nature_conv_dim, nature_convs


def test_reached_observations_take_final_obs_only_where_an_episode_ended():
    next_obs = np.arange(12, dtype=np.float32).reshape(3, 4)
    final = np.empty(3, dtype=object)
    final[1] = np.full(4, -1.0, dtype=np.float32)
    done = np.array([False, True, False])
    reached = reached_observations(next_obs, done, {"final_obs": final, "_final_obs": done})
    assert reached[1].tolist() == [-1.0] * 4
    assert np.array_equal(reached[[0, 2]], next_obs[[0, 2]])
    assert next_obs[1].tolist() == [4.0, 5.0, 6.0, 7.0]  # the env's array is not written
    assert reached_observations(next_obs, np.zeros(3, bool), {}) is next_obs


@pytest.mark.parametrize("shape", [(4, 84, 84), (12, 64, 64), (1, 36, 40)])
def test_nature_conv_dim_is_the_width_the_stack_produces(shape):
    out = nature_convs(shape[0])(torch.zeros(2, *shape))
    assert out.shape == (2, nature_conv_dim(shape))


def test_nature_conv_dim_refuses_vectors_and_tiny_images():
    with pytest.raises(ConfigError, match="image observations"):
        nature_conv_dim((4,))
    with pytest.raises(ConfigError, match="too small"):
        nature_conv_dim((3, 32, 32))


@pytest.mark.parametrize("technique, parts", [("baseline", set()), ("reg", {"reg"}), ("gar+reg", {"gar", "reg"})])
def test_techniques_are_parsed_once(technique, parts):
    cfg = rlcli.resolve_config("ppo", env="cartpole", overrides=[f"run.technique={technique}"])
    assert cfg.run.techniques == parts


def test_rnd_predictor_is_stepped_and_clipped_with_the_policy():
    from rlcli.engine.train import build_algorithm

    algo = build_algorithm(rlcli.resolve_config("rnd", env="cartpole", overrides=["rnd.warmup_steps=0"]))
    try:
        trained = {id(p) for p in algo.trained_parameters()}
        assert {id(p) for p in algo.policy.parameters()} <= trained
        assert {id(p) for p in algo.rnd.predictor.parameters()} <= trained
        assert not trained & {id(p) for p in algo.rnd.target.parameters()}  # the target stays fixed
    finally:
        algo.close()
