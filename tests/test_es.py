"""OpenAI-ES: fitness shaping, the antithetic gradient estimate, learning, and the refusal of gar."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rlcli
from rlcli.algos.es import centered_ranks
from rlcli.config.fields import ConfigError
from rlcli.engine.timing import PhaseTimer
from rlcli.engine.train import build_algorithm
from rlcli.storage.metrics import read_metrics

REPO = Path(__file__).resolve().parents[1]


def test_centered_ranks_span_minus_half_to_half_whatever_the_scale():
    r = centered_ranks(np.array([10.0, -5.0, 1e6, 0.0]))
    assert r.tolist() == pytest.approx([1 / 6, -0.5, 0.5, -1 / 6])


def test_population_members_act_with_their_own_parameters():
    """Each env of the population is driven by its own perturbed parameters (vmap), not the centre's."""
    cfg = rlcli.resolve_config("es", env="cartpole", overrides=["es.population_size=4"])
    algo = build_algorithm(cfg)
    try:
        torch.manual_seed(1)
        thetas = algo.center.detach() + torch.randn(4, algo.center.numel())  # four different members
        obs = torch.randn(4, 3, 4)  # 3 observations per member
        batched = algo.member_logits(thetas, obs)
        for m in range(4):  # the same as loading member m's parameters into the policy and calling it
            torch.nn.utils.vector_to_parameters(thetas[m], algo.policy.parameters())
            with torch.no_grad():
                assert torch.allclose(batched[m], algo.policy(obs[m])[0], atol=1e-5)
        assert not torch.allclose(batched[0], batched[1])
        fitness, returns, lengths = algo.evaluate_population(thetas, PhaseTimer())
        assert fitness.shape == (4,) and algo.env_steps == int(lengths.sum())
    finally:
        algo.close()


def test_es_gradient_is_antithetic_rank_weighted_noise():
    cfg = rlcli.resolve_config("es", env="cartpole", overrides=["es.population_size=6", "es.learning_rate=0.1"])
    algo = build_algorithm(cfg)
    try:
        before = algo.center.detach().clone()
        gen = torch.Generator().set_state(algo.noise.get_state())
        eps = torch.randn(3, before.numel(), generator=gen)
        result = algo.iteration(PhaseTimer())
        after = algo.center.detach()
        # Adam's first step moves each coordinate by lr * sign(grad): recover the sign from the noise
        # and the population's returns
        fitness = np.array(result.episode_returns)
        ranks = centered_ranks(fitness)
        grad = torch.as_tensor(ranks[:3] - ranks[3:], dtype=torch.float32) @ eps
        moved = torch.sign(after - before)
        nonzero = grad.abs() > 1e-6
        assert torch.equal(moved[nonzero], torch.sign(grad[nonzero]))
        # the policy that acts (and is checkpointed) holds the new centre
        assert torch.equal(torch.nn.utils.parameters_to_vector(algo.policy.parameters()), after)
    finally:
        algo.close()


def test_es_learns_cartpole(tmp_path):
    cfg = rlcli.resolve_config("es", env="cartpole", extra={"run": {"total_steps": 15_000, "runs_dir": str(tmp_path),
                                                                    "name": "e", "eval_episodes": 5}})
    result = rlcli.train(cfg)
    m = read_metrics(tmp_path / "e" / "metrics.h5")
    pop = m["population_return_mean"][:, 1]
    assert pop[-3:].mean() > pop[:3].mean()
    assert result.final_eval_return > 40  # a random policy lasts ~20 steps
    assert "gas" not in m


def test_es_with_gar_is_a_config_error_saying_why():
    with pytest.raises(ConfigError, match="es computes none"):
        rlcli.resolve_config("es", env="cartpole", extra={"run": {"technique": "gar+reg"}})
    out = subprocess.run([sys.executable, "-m", "rlcli.cli.main", "train", "es", "--env", "cartpole",
                          "--technique", "gar", "--dry-run"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 2
    assert "gradients" in out.stderr and "Traceback" not in out.stderr


def _centre_norm_after(technique: str, generations: int) -> float:
    cfg = rlcli.resolve_config("es", preset="es-cartpole", overrides=["es.population_size=10"],
                               extra={"run": {"technique": technique}})
    algo = build_algorithm(cfg)
    try:
        for _ in range(generations):
            algo.iteration(PhaseTimer())
        return float(algo.center.detach().norm())
    finally:
        algo.close()


def test_es_reg_is_an_l2_penalty_that_shrinks_the_parameters():
    """reg pulls the centre towards 0 (OpenAI ES's l2coeff 0.005 from the preset): after 3 generations the norm
    is measurably below baseline's (AdamW's decay of 1e-4 moved it by ~1e-5 relative)."""
    baseline, reg = _centre_norm_after("baseline", 3), _centre_norm_after("reg", 3)
    assert reg < baseline * (1 - 1e-3), (baseline, reg)


def test_es_with_consistent_dropout_scores_the_policy_in_eval_mode():
    """vit-consistent-dropout under ES: no vmap randomness error, and dropout is off wherever ES acts."""
    cfg = rlcli.resolve_config("es", env="cartpole", overrides=["es.population_size=4", "policy.dropout_p=0.5",
                                                                "policy.perceiver_dim=16", "policy.perceiver_heads=2"],
                               extra={"policy": {"name": "vit-consistent-dropout"}})
    algo = build_algorithm(cfg)
    try:
        assert not algo.policy.training
        result = algo.iteration(PhaseTimer())  # crashed in vmap before
        assert len(result.episode_returns) == 4
        obs = torch.randn(1, 5, 4)
        theta = algo.center.detach()[None]
        first, second = algo.member_logits(theta, obs), algo.member_logits(theta, obs)
        assert torch.equal(first, second)  # no fresh dropout masks
        with torch.no_grad():
            assert torch.allclose(first[0], algo.policy(obs[0])[0], atol=1e-5)
        assert np.array_equal(algo.act(obs[0].numpy()), algo.act(obs[0].numpy()))
        assert not algo.policy.training
    finally:
        algo.close()


def test_es_resume_n_to_2n_equals_2n_in_one_go(tmp_path):
    from rlcli.storage.checkpoint import load_checkpoint

    def cfg(steps: int, name: str):
        return rlcli.resolve_config("es", env="cartpole", overrides=["es.population_size=10", "run.eval_episodes=3"],
                                    extra={"run": {"total_steps": steps, "runs_dir": str(tmp_path), "name": name}})

    straight = rlcli.train(cfg(2000, "straight"))
    first = cfg(1000, "resumed")
    rlcli.train(first)
    second = first.copy()
    second.run.total_steps = 2000
    resumed = rlcli.train(second, resume=tmp_path / "resumed")
    a = load_checkpoint(straight.run_dir / "checkpoints" / "last.h5")
    b = load_checkpoint(resumed.run_dir / "checkpoints" / "last.h5")
    model_a, model_b = a.tensors("model"), b.tensors("model")
    assert model_a.keys() == model_b.keys()
    for k in model_a:
        assert torch.equal(model_a[k], model_b[k]), k
    assert torch.equal(a.tensors("optimizer")["0"]["exp_avg"], b.tensors("optimizer")["0"]["exp_avg"])
    assert a.documents["counters"] == b.documents["counters"]
    assert (resumed.final_eval_return, resumed.final_eval_std) == (straight.final_eval_return,
                                                                   straight.final_eval_std)
    ma, mb = read_metrics(straight.run_dir / "metrics.h5"), read_metrics(resumed.run_dir / "metrics.h5")
    assert np.array_equal(ma["population_return_mean"], mb["population_return_mean"])
