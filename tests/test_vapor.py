"""VAPOR: the beta schedules, the loss's pieces, its metrics in metrics.h5, and its config on the CLI."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rlcli
from rlcli.algos.vapor import VAPOR, bernoulli_entropy, beta_at
from rlcli.config.presets import resolve_config
from rlcli.engine.seeding import seed_everything
from rlcli.storage.metrics import read_metrics

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)  # as run.torch_threads does for training
VAPOR_METRICS = ("vapor_policy_loss", "vapor_kl_penalty", "vapor_exploration_bonus", "vapor_posterior_entropy",
                 "vapor_beta")


@pytest.mark.parametrize("schedule, start, middle, end", [
    ("constant", 2.0, 2.0, 2.0),
    ("linear", 2.0, 1.1, 0.2),  # halfway between beta and min_beta
    ("exponential", 2.0, math.sqrt(2.0 * 0.2), 0.2),  # geometric mean halfway
])
def test_beta_schedules_at_start_middle_end(schedule, start, middle, end):
    assert beta_at(schedule, 2.0, 0.2, 0.0) == pytest.approx(start)
    assert beta_at(schedule, 2.0, 0.2, 0.5) == pytest.approx(middle)
    assert beta_at(schedule, 2.0, 0.2, 1.0) == pytest.approx(end)
    assert beta_at(schedule, 2.0, 0.2, 1.5) == pytest.approx(end)  # clamped after the end


@pytest.mark.parametrize("schedule", ["constant", "linear", "exponential"])
def test_vapor_beta_in_metrics_follows_the_schedule(tmp_path, schedule):
    cfg = resolve_config("vapor", env="cartpole", overrides=[
        "run.total_steps=2048", f"run.runs_dir={tmp_path}", "run.name=r", "run.checkpoint_every=0",
        "run.eval_episodes=1", f"vapor.beta_schedule={schedule}", "vapor.beta=2.0", "vapor.min_beta=0.2"])
    rlcli.train(cfg)
    metrics = read_metrics(tmp_path / "r" / "metrics.h5")
    assert set(VAPOR_METRICS) <= set(metrics)
    steps, betas = metrics["vapor_beta"][:, 0], metrics["vapor_beta"][:, 1]
    assert list(steps) == [512, 1024, 1536, 2048]  # one row per iteration of 4 envs x 128 steps
    expected = [beta_at(schedule, 2.0, 0.2, s / 2048) for s in steps]
    assert betas == pytest.approx(expected, rel=1e-6)
    assert betas[1] == pytest.approx({"constant": 2.0, "linear": 1.1, "exponential": math.sqrt(0.4)}[schedule])
    assert betas[-1] == pytest.approx(2.0 if schedule == "constant" else 0.2)
    for name in VAPOR_METRICS:
        assert len(metrics[name]) == 4


@pytest.fixture(scope="module")
def vapor_algo():
    seed_everything(0)
    cfg = resolve_config("vapor", env="cartpole", overrides=["vapor.beta_schedule=constant", "vapor.beta=0.5"])
    algo = VAPOR(cfg, torch.device("cpu"))
    yield algo
    algo.close()


def loss_parts(algo, new_logprob, old_logprob, advantages, entropy):
    mb = {"logprobs": old_logprob}
    loss, stats = algo.policy_loss(new_logprob, entropy, mb, advantages)
    return loss, stats


def test_loss_pieces(vapor_algo):
    algo = vapor_algo
    adv = torch.tensor([-2.0, 0.0, 1.0, 3.0])
    old = torch.log(torch.tensor([0.5, 0.4, 0.7, 0.2]))
    new = old.clone().requires_grad_(True)
    entropy = torch.full((4,), 0.6)
    _, stats = loss_parts(algo, new, old, adv, entropy)
    p = torch.sigmoid(adv / 0.5)
    assert stats["vapor_beta"].item() == pytest.approx(0.5)
    assert stats["vapor_kl_penalty"].item() == pytest.approx(0.0, abs=1e-7)  # pi_new == pi_old
    assert stats["vapor_posterior_entropy"].item() == pytest.approx(bernoulli_entropy(p).mean().item())
    assert bernoulli_entropy(torch.tensor([0.5]))[0].item() == pytest.approx(math.log(2))
    bonus = algo.cfg.vapor.exploration_bonus * (bernoulli_entropy(p) * 0.6).mean()
    assert stats["vapor_exploration_bonus"].item() == pytest.approx(bonus.item())
    # at pi_new == pi_old the gradient of the loss wrt log pi_new(a|s) is -p * A / N (KL's gradient is 0)
    loss, _ = loss_parts(algo, new, old, adv, entropy)
    loss.backward()
    assert new.grad == pytest.approx((-p * adv / 4).tolist(), abs=1e-6)


def test_importance_weights_are_clipped_and_kl_grows_with_the_change(vapor_algo):
    algo = vapor_algo
    adv = torch.tensor([1.0, 1.0])
    old = torch.log(torch.tensor([0.2, 0.2]))
    moved = torch.log(torch.tensor([0.4, 0.1])).requires_grad_(True)  # ratios 2 and 0.5
    loss, stats = loss_parts(algo, moved, old, adv, torch.zeros(2))
    assert stats["vapor_kl_penalty"].item() > 0
    pg = -(torch.tensor([1.2, 0.8]) * torch.sigmoid(adv / 0.5) * adv * moved).mean()  # weights clipped to 1 +- 0.2
    assert stats["vapor_policy_loss"].item() == pytest.approx(pg.item())
    algo.cfg.vapor.use_importance_weighting = False
    try:
        _, stats = loss_parts(algo, moved, old, adv, torch.zeros(2))
    finally:
        algo.cfg.vapor.use_importance_weighting = True
    assert stats["vapor_policy_loss"].item() == pytest.approx(-(torch.sigmoid(adv / 0.5) * adv * moved).mean().item())


def test_dry_run_shows_the_vapor_section(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "rlcli.cli.main", "train", "vapor", "--env", "cartpole",
                          "--dry-run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    section = out.stdout.split("[vapor]")[1]
    for key in ("beta", "beta_schedule", "min_beta", "exploration_bonus", "use_importance_weighting"):
        assert f"\n{key} = " in section
    bad = subprocess.run([sys.executable, "-m", "rlcli.cli.main", "train", "vapor", "--dry-run", "--set",
                          "vapor.beta_schedule=cosine"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "vapor.beta_schedule must be one of constant, linear, exponential" in bad.stderr
