"""The one registry: what it lists, what it refuses before a run, and that reading it stays torch-free."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

import rlcli
from rlcli import registry
from rlcli.config.fields import ConfigError
from rlcli.config.schema import describe_options
from rlcli.specs import AlgoSpec, EnvSpec


def test_reading_the_registry_imports_no_torch_numpy_or_gymnasium():
    code = ("import sys, rlcli.registry as r, rlcli.config.schema, rlcli.cli.values; r.env_ids(); "
            "print(sorted({'torch', 'numpy', 'gymnasium', 'h5py'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_registered_algorithm_has_its_sections_and_a_loadable_class():
    for spec in registry.algorithms():
        assert spec.description and spec.sections
        assert isinstance(registry.algorithm_class(spec.name), type)
    assert "ad" not in [s.name for s in registry.algorithms("train")]


def test_env_ids_list_atari_games_from_ale_py_roms():
    ids = registry.env_ids()
    assert {"cartpole", "darkroom", "mario", "atari:Pong", "atari:MontezumaRevenge"} <= set(ids)
    assert "atari" not in ids  # atari needs a game
    assert "mario:SuperMarioBros-1-1-v0" in ids


@pytest.mark.parametrize("algo, env, sets, message", [
    ("ppo", "cartpol", [], "did you mean 'cartpole'"),
    ("ppo", "atari:Pongg", [], "did you mean 'Pong'"),
    ("ppo", "mario:SuperMarioBros-9-9-v0", [], "unknown Mario environment"),
    ("ppo", "cartpole", ["policy.name=vit"], "unknown policy 'vit'"),
    ("ppo", "cartpole", ["policy.name=vit-explorative"], "needs image observations"),
    ("es", "cartpole", ["run.technique=gar+reg"], "es computes none"),
    ("rnd", "cartpole", ["run.technique=gar"], "not implemented for rnd"),
    ("ppo", "darkroom", ["run.technique=gar"], "'darkroom' has no variations"),
    ("ppo", "cartpole", ["env.terminate_on_goal=false"], "env.terminate_on_goal does not apply"),
])
def test_a_config_no_run_could_honour_is_refused_when_resolved(algo, env, sets, message):
    with pytest.raises(ConfigError, match=message):
        rlcli.resolve_config(algo, env=env, overrides=sets)


def test_a_plugin_registers_an_env_and_an_algorithm_once():
    registry.register_env(EnvSpec("cartpole-copy", "CartPole again", "rlcli.envs.registry:cartpole_vec",
                                  "rlcli.envs.registry:cartpole_single", "rlcli", variation=True,
                                  keys=("id", "num_envs", "variation_level", "max_episode_steps")))
    registry.register_algo(AlgoSpec("ppo-copy", "rlcli.algos.ppo:PPO", "PPO again",
                                    sections=registry.algo_spec("ppo").sections))
    try:
        cfg = rlcli.resolve_config("ppo-copy", env="cartpole-copy", overrides=["env.variation_level=0.5"])
        assert cfg.env.id == "cartpole-copy" and "ppo.learning_rate" in {r[0] for r in describe_options("ppo-copy")}
        assert "cartpole-copy" in registry.env_ids()
    finally:
        registry._algos.pop("ppo-copy")
        registry._envs.pop("cartpole-copy")


def test_options_list_only_keys_that_apply():
    keys = {r[0] for r in describe_options("ppo", "atari:Pong", "vit-explorative")}
    assert {"env.backend", "policy.vit_dim"} <= keys
    assert not {"env.variation_level", "env.terminate_on_goal", "policy.perceiver_dim"} & keys
    ad_env_keys = {r[0] for r in describe_options("ad") if r[0].startswith("env.")}
    assert ad_env_keys == {"env.id", "env.max_episode_steps", "env.terminate_on_goal"}
