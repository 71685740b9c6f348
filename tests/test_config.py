"""The config schema: presets, overrides, validation and the TOML round trip."""

from __future__ import annotations

import pytest

import rlcli
from rlcli.config.fields import ConfigError
from rlcli.config.presets import read_toml
from rlcli.config.schema import build_config, describe_options


def test_preset_is_picked_by_algo_and_env_and_overrides_win():
    cfg = rlcli.resolve_config("ppo", env="cartpole", overrides=["ppo.learning_rate=1e-3", "env.num_envs=8"])
    assert cfg.ppo.learning_rate == 1e-3
    assert cfg.env.num_envs == 8
    assert cfg.ppo.num_steps == 128  # from presets/ppo-cartpole.toml


def test_user_toml_layer_sits_between_preset_and_overrides(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text('algo = "ppo"\n[ppo]\nlearning_rate = 5e-4\nnum_epochs = 7\n')
    cfg = rlcli.resolve_config("ppo", env="cartpole", preset=str(user), overrides=["ppo.num_epochs=2"])
    assert cfg.ppo.learning_rate == 5e-4
    assert cfg.ppo.num_epochs == 2


def test_dry_run_toml_round_trips(tmp_path):
    cfg = rlcli.resolve_config("ppo", env="cartpole", overrides=["run.seed=3", "policy.hidden_sizes=[32,16]"])
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    again = build_config("ppo", [read_toml(path)])
    assert again.to_dict() == cfg.to_dict()
    assert again.policy.hidden_sizes == [32, 16]


@pytest.mark.parametrize("override, message", [
    ("ppo.learning_rat=1e-3", "did you mean 'ppo.learning_rate'"),
    ("ppo.num_steps=abc", "ppo.num_steps"),
    ("ppo.gamma=1.5", "ppo.gamma"),
    ("run.device=tpu", "run.device"),
    ("nosection.x=1", "nosection"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        rlcli.resolve_config("ppo", env="cartpole", overrides=[override])
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_algorithm_gets_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'ppo'"):
        rlcli.resolve_config("ppoo", env="cartpole")


def test_every_option_is_documented():
    rows = describe_options("ppo")
    keys = {r[0] for r in rows}
    assert {"ppo.learning_rate", "run.seed", "env.num_envs", "policy.hidden_sizes"} <= keys
    assert all(r[3] for r in rows), "every option has a help string"
