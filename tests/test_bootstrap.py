"""Episode ends and bootstrapping: gamma * V(final obs) only where ``truncated and not terminated`` (SB3's rule).

Gymnasium's MiniGrid reports ``terminated`` and ``truncated`` together when the goal (or a collision) falls on
the last allowed step. Such a step ends in a terminal state: it has no future value to bootstrap.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

import rlcli
from rlcli.engine.collector import RolloutCollector
from rlcli.engine.replay_buffer import ReplayBuffer
from rlcli.engine.timing import PhaseTimer
from rlcli.nets.policies import make_policy

EPISODE_STEPS = 3  # every episode of the env below lasts three steps


class _EndsTogetherVectorEnv(VectorEnv):
    """Three envs whose episodes last 3 steps and end: env 0 terminated, env 1 truncated, env 2 both at once.

    Observations are [env index, step in episode]; the reward is 1 per step; SAME_STEP autoreset with the
    last observation in ``info["final_obs"]``, as rlcli's vector envs do.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self):
        self.num_envs = 3
        self.single_observation_space = gym.spaces.Box(-10, 10, (2,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, 3)
        self.action_space = batch_space(self.single_action_space, 3)
        self.t = np.zeros(3, dtype=np.int64)

    def _obs(self) -> np.ndarray:
        return np.stack([np.arange(3), self.t], axis=1).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        self.t[:] = 0
        return self._obs(), {}

    def step(self, actions):
        self.t += 1
        end = self.t >= EPISODE_STEPS
        terminated = end & np.array([True, False, True])
        truncated = end & np.array([False, True, True])
        info = {}
        if end.any():
            info = {"final_obs": self._obs(), "_final_obs": end}
            self.t[end] = 0
        return self._obs(), np.ones(3, dtype=np.float32), terminated, truncated, info


def test_collector_bootstraps_only_truncated_and_not_terminated():
    env = _EndsTogetherVectorEnv()
    cfg = rlcli.resolve_config("ppo", env="cartpole")
    policy = make_policy(cfg.policy, env.single_observation_space, env.single_action_space)
    gamma = 0.9
    collector = RolloutCollector(env, policy, EPISODE_STEPS, gamma, torch.device("cpu"), seed=0)
    collector.collect(PhaseTimer())
    rewards = collector.buffer["rewards"]  # (T, B)
    final_obs = torch.tensor([[1.0, EPISODE_STEPS]])
    with torch.no_grad():
        v_final = float(policy.value(final_obs)[0])
    assert abs(v_final) > 1e-4  # a bootstrap would show
    last = EPISODE_STEPS - 1
    assert float(rewards[last, 0]) == 1.0  # terminated: no bootstrap
    assert torch.isclose(rewards[last, 1], torch.tensor(1.0 + gamma * v_final))  # truncated only: bootstrap
    assert float(rewards[last, 2]) == 1.0  # both reported: terminal, no bootstrap
    assert torch.all(rewards[:last] == 1.0)
    assert torch.all(collector.buffer["dones"][last] == 1.0)


def test_replay_buffer_never_bootstraps_a_step_reported_terminated_and_truncated():
    env = _EndsTogetherVectorEnv()
    buf = ReplayBuffer(8, 3, (2,), np.float32, torch.device("cpu"))
    obs, _ = env.reset()
    for _ in range(EPISODE_STEPS):
        next_obs, reward, terminated, truncated, info = env.step(np.zeros(3, dtype=np.int64))
        real = np.where((terminated | truncated)[:, None], info.get("final_obs", next_obs), next_obs)
        buf.add(obs, np.zeros(3, dtype=np.int64), reward, real, terminated, truncated)
        obs = next_obs

    class _LastRow:  # sample the last step of each env's episode, every env in turn
        def integers(self, low, high, size):
            return np.full(size, EPISODE_STEPS - 1)

        def choice(self, a, size):
            return np.arange(size) % 3

    batch = buf.sample(3, _LastRow(), n_step=1, gamma=0.9)
    assert batch["discounts"].tolist() == [0.0, 0.8999999761581421, 0.0]
