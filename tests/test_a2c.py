"""A2C: its loss is the hand-written one, an update is one optimizer step, and a short run learns CartPole."""

from __future__ import annotations

import pytest
import torch

import rlcli
from rlcli.config.fields import ConfigError
from rlcli.engine.timing import PhaseTimer
from rlcli.engine.train import build_algorithm


@pytest.fixture
def a2c_algo():
    cfg = rlcli.resolve_config("a2c", env="cartpole", overrides=["a2c.ent_coef=0.01", "a2c.vf_coef=0.25"])
    algo = build_algorithm(cfg)
    yield algo
    algo.close()


def test_loss_of_a_rollout_equals_the_hand_computation(a2c_algo):
    algo = a2c_algo
    _, _, next_value = algo.collect(PhaseTimer())
    batch, _ = algo.learning_batch(next_value, PhaseTimer())
    assert batch["obs"].shape[0] == 5 * 8  # a2c.num_steps x env.num_envs of the preset
    loss, stats = algo.minibatch_loss(batch)
    logits, values = algo.policy(batch["obs"])
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(1, batch["actions"][:, None]).squeeze(1)
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    pg = -(batch["advantages"] * logp).mean()  # a2c.norm_adv is off: raw GAE advantages
    mse = ((values - batch["returns"]) ** 2).mean()
    torch.testing.assert_close(loss, pg - 0.01 * entropy + 0.25 * mse)
    torch.testing.assert_close(stats["policy_loss"], pg.detach())
    torch.testing.assert_close(stats["value_loss"], mse.detach())
    # GAE with lambda 1: value targets are the discounted n-step returns bootstrapped from next_value
    buf = algo.collector.buffer
    ret = next_value.clone()
    for t in reversed(range(5)):
        ret = buf["rewards"][t] + 0.99 * ret * (1 - buf["dones"][t])
    torch.testing.assert_close(batch["returns"].reshape(5, 8)[0], ret)


def test_an_update_is_one_rmsprop_step(a2c_algo):
    algo = a2c_algo
    assert isinstance(algo.optimizer, torch.optim.RMSprop)
    before = [p.detach().clone() for p in algo.policy.parameters()]
    result = algo.iteration(PhaseTimer())
    assert algo.env_steps == 40 and {"policy_loss", "value_loss", "entropy", "explained_variance"} <= set(result.metrics)
    steps = {int(s["step"]) for s in algo.optimizer.state.values()}
    assert steps == {1}
    assert any(not torch.equal(a, b) for a, b in zip(before, algo.policy.parameters(), strict=True))


def test_a2c_learns_cartpole_in_a_short_run(tmp_path):
    # 16k steps of the preset (learning rate annealed over them): seed 0 evaluates at ~127 (500 takes ~200k);
    # a random policy scores about 22
    cfg = rlcli.resolve_config("a2c", env="cartpole", overrides=[
        "run.total_steps=16000", f"run.runs_dir={tmp_path}", "run.eval_every=0", "run.eval_episodes=5"])
    result = rlcli.train(cfg)
    assert result.final_eval_return >= 60, result


@pytest.mark.parametrize("technique", ["gar", "reg"])
def test_a2c_refuses_the_techniques(technique):
    with pytest.raises(ConfigError, match="not implemented for a2c"):
        rlcli.resolve_config("a2c", env="cartpole", overrides=[f"run.technique={technique}"])
