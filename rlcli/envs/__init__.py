"""Environment families and their registrations (read by :mod:`rlcli.registry`; torch- and gym-free).

Each family names its factories in :mod:`rlcli.envs.registry` by ``"module:function"`` targets, so listing
or checking an environment never imports gymnasium or the env's package.
"""

from __future__ import annotations

from rlcli.specs import EnvSpec

_FACTORIES = "rlcli.envs.registry"

ENVIRONMENTS: list[EnvSpec] = [
    EnvSpec("cartpole", "CartPole-v1 with varied dynamics", f"{_FACTORIES}:cartpole_vec",
            f"{_FACTORIES}:cartpole_single", "rlcli", variation=True,
            keys=("id", "num_envs", "variation_level", "max_episode_steps")),
    EnvSpec("minigrid", "MiniGrid Dynamic-Obstacles with varied layout (size 6-12, 2-8 balls)",
            f"{_FACTORIES}:minigrid_vec", f"{_FACTORIES}:minigrid_single", "rlcli[minigrid]",
            modules=("minigrid",), variation=True, keys=("id", "num_envs", "variation_level", "max_episode_steps")),
    EnvSpec("starpilot", "Procgen Starpilot, 4 stacked 64x64 RGB frames, varied level set and difficulty",
            f"{_FACTORIES}:starpilot_vec", f"{_FACTORIES}:starpilot_single", "rlcli[procgen]",
            modules=("procgen",), observation="image", variation=True,
            keys=("id", "num_envs", "variation_level", "max_episode_steps")),
    EnvSpec("atari", "Atari 2600 games (atari:MontezumaRevenge, atari:Pong, ...), ale-py or envpool",
            f"{_FACTORIES}:atari_vec", f"{_FACTORIES}:atari_single", "rlcli[atari]",
            modules=("ale_py", "envpool"), observation="image",
            keys=("id", "num_envs", "max_episode_steps", "backend"),
            variants="rlcli.envs.variants:atari_games", check_id="rlcli.envs.variants:check_atari_id"),
    EnvSpec("mario", "Super Mario Bros (mario, or mario:SuperMarioBros-1-1-v0), gym-super-mario-bros 7.4",
            f"{_FACTORIES}:mario_vec", f"{_FACTORIES}:mario_single", "rlcli[mario]",
            modules=("gym_super_mario_bros",), observation="image",
            keys=("id", "num_envs", "max_episode_steps", "action_set"),
            variants="rlcli.envs.variants:mario_levels", check_id="rlcli.envs.variants:check_mario_id"),
    EnvSpec("darkroom", "DarkRoom 9x9, a goal per task (Algorithm Distillation)", f"{_FACTORIES}:darkroom_vec",
            f"{_FACTORIES}:darkroom_single", "rlcli", observation="discrete",
            keys=("id", "num_envs", "max_episode_steps", "terminate_on_goal")),
]
