"""Learners, one module each, and their registrations (read by :mod:`rlcli.registry`).

This module stays torch-free: ``ALGORITHMS`` names each learner's class by a ``"module:Class"`` target,
imported only when a run starts. Adding a learner is one module plus one entry here (and a preset).
"""

from __future__ import annotations

from rlcli.config.ad import A2CConfig, ADConfig, CollectConfig, check_ad
from rlcli.config.learners import A2CLearnerConfig, DQNConfig, ESConfig, GARConfig, check_es, check_gar
from rlcli.config.sections import PPOConfig, RNDConfig, RNDPPOConfig, VaporConfig
from rlcli.specs import AlgoSpec

ACTOR_CRITIC_POLICIES = ("mlp", "cnn", "vit-explorative", "vit-consistent-dropout")

ALGORITHMS: list[AlgoSpec] = [
    AlgoSpec("ppo", "rlcli.algos.ppo:PPO", "Proximal Policy Optimization (CleanRL's PPO, clipped surrogate)",
             sections={"ppo": PPOConfig, "gar": GARConfig}, techniques=("baseline", "reg", "gar"),
             policies=ACTOR_CRITIC_POLICIES, check=check_gar),
    AlgoSpec("vapor", "rlcli.algos.vapor:VAPOR", "VAPOR: PPO with an optimality-posterior policy loss",
             sections={"ppo": PPOConfig, "gar": GARConfig, "vapor": VaporConfig},
             techniques=("baseline", "reg", "gar"), policies=ACTOR_CRITIC_POLICIES, check=check_gar),
    AlgoSpec("dqn", "rlcli.algos.dqn:DQN", "Deep Q-Network (double DQN, n-step returns)",
             sections={"dqn": DQNConfig, "gar": GARConfig}, techniques=("baseline", "reg", "gar"),
             policies=("mlp", "cnn"), check=check_gar),
    AlgoSpec("es", "rlcli.algos.es:ES", "Evolution Strategies (antithetic OpenAI-ES with Adam)",
             sections={"es": ESConfig}, policies=ACTOR_CRITIC_POLICIES, check=check_es),
    AlgoSpec("rnd", "rlcli.algos.rnd:RND", "Random Network Distillation: PPO with a novelty bonus",
             sections={"ppo": RNDPPOConfig, "rnd": RNDConfig}, techniques=("baseline",),
             policies=("mlp", "cnn", "vit-explorative")),
    AlgoSpec("a2c", "rlcli.algos.a2c:A2C", "Advantage Actor-Critic: PPO's rollouts and policies, one unclipped "
             "policy-gradient step per rollout", sections={"a2c": A2CLearnerConfig}, techniques=("baseline",),
             policies=ACTOR_CRITIC_POLICIES),
    AlgoSpec("ad", "rlcli.ad.distill:AD", "Algorithm Distillation: a transformer trained on A2C learning "
             "histories (rlcli collect, then rlcli distill)",
             sections={"collect": CollectConfig, "a2c": A2CConfig, "ad": ADConfig}, observations=("discrete",),
             techniques=("baseline",), variation=False, policies=("mlp",), command="distill",
             env_keys=("id", "max_episode_steps", "terminate_on_goal"), check=check_ad),
]
