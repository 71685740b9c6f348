"""The vectorized CartPole: the same dynamics as gymnasium's CartPole-v1."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlcli.envs.cartpole import CartPoleVectorEnv


def test_vector_cartpole_matches_gymnasium_step_for_step():
    env = CartPoleVectorEnv(1, 0.0, 500)
    env.reset(seed=3)
    reference = gym.make("CartPole-v1").unwrapped
    reference.reset(seed=0)
    reference.state = env.state[0].copy()
    rng = np.random.default_rng(0)
    for _ in range(200):
        action = int(rng.integers(2))
        obs, reward, terminated, truncated, _ = env.step(np.array([action]))
        ref_obs, ref_reward, ref_terminated, _, _ = reference.step(action)
        assert terminated[0] == ref_terminated and reward[0] == ref_reward
        if terminated[0]:
            break
        np.testing.assert_array_equal(obs[0], ref_obs)
    else:
        raise AssertionError("a random policy ends a CartPole episode within 200 steps")
