"""PPO on CartPole through the library API: it learns, and resuming is exact."""

from __future__ import annotations

import pytest
import torch

import rlcli
from rlcli.config.fields import ConfigError
from rlcli.storage.checkpoint import load_checkpoint
from rlcli.storage.metrics import read_metrics
from rlcli.storage.runs import CHECKPOINT_LAST


def test_ppo_learns_cartpole(small_ppo):
    # 40k steps of the preset (CleanRL's hyperparameters); a random policy scores about 22
    cfg = small_ppo(40_960, **{"run.eval_episodes": 10, "run.seed": 1})
    result = rlcli.train(cfg)
    assert result.final_eval_return >= 200, result
    metrics = read_metrics(result.run_dir / "metrics.h5")
    returns = metrics["episode_return"][:, 1]
    assert returns[-10:].mean() > 2 * returns[:10].mean(), "training episodes get longer"


def test_resume_n_to_2n_equals_2n_in_one_go(small_ppo):
    # anneal_lr off: with annealing the schedule depends on total_steps, which --steps changes on resume
    straight = rlcli.train(small_ppo(2048, **{"run.name": "straight", "ppo.anneal_lr": "false"}))
    first = small_ppo(1024, **{"run.name": "resumed", "ppo.anneal_lr": "false"})
    half = rlcli.train(first)
    assert half.steps == 1024
    second = first.copy()
    second.run.total_steps = 2048
    resumed = rlcli.train(second, resume=half.run_dir)
    assert resumed.steps == 2048
    a = load_checkpoint(straight.run_dir / CHECKPOINT_LAST)
    b = load_checkpoint(resumed.run_dir / CHECKPOINT_LAST)
    model_a, model_b = a.tensors("model"), b.tensors("model")
    assert model_a.keys() == model_b.keys()
    for k in model_a:
        assert torch.equal(model_a[k], model_b[k]), k
    opt_a, opt_b = a.tensors("optimizer"), b.tensors("optimizer")
    for pid in opt_a:
        assert torch.equal(opt_a[pid]["exp_avg_sq"], opt_b[pid]["exp_avg_sq"])
    assert (resumed.final_eval_return, resumed.final_eval_std) == (straight.final_eval_return,
                                                                   straight.final_eval_std)
    # the resumed run's metrics hold each step once
    steps = read_metrics(resumed.run_dir / "metrics.h5")["policy_loss"][:, 0]
    assert steps.tolist() == [512, 1024, 1536, 2048]


def test_train_refuses_to_overwrite_an_existing_run(small_ppo):

    cfg = small_ppo(512, **{"run.name": "taken"})
    rlcli.train(cfg)

    with pytest.raises(ConfigError, match="already exists"):
        rlcli.train(small_ppo(512, **{"run.name": "taken"}))


def test_gae_matches_a_hand_worked_case():
    # gamma 0.9, lambda 0.8; the episode ends after step 1, so step 1 bootstraps nothing and step 0 sees
    # only step 1's advantage: deltas (0.95, 0.5, 2.3), advantages (0.95 + 0.72 * 0.5, 0.5, 2.3)
    from rlcli.engine.gae import compute_gae

    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.tensor([[0.5], [0.5], [0.5]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    advantages, returns = compute_gae(rewards, values, dones, torch.tensor([2.0]), gamma=0.9, gae_lambda=0.8)
    assert torch.allclose(advantages[:, 0], torch.tensor([1.31, 0.5, 2.3]))
    assert torch.allclose(returns[:, 0], torch.tensor([1.81, 1.0, 2.8]))
    assert advantages.dtype == torch.float32 and advantages.shape == (3, 1)


@pytest.mark.parametrize("max_norm", [0.5, 1e6])  # clipping and not clipping
def test_clip_grad_norm_matches_torch(max_norm):
    from rlcli.engine.grad_clip import clip_grad_norm

    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5)), torch.nn.Parameter(torch.randn(2))]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for a, b in zip(ours, ref, strict=True):
        a.grad = torch.randn_like(a)
        b.grad = a.grad.clone()
    ours[2].grad, ref[2].grad = None, None  # parameters without gradients are skipped
    norm = clip_grad_norm(ours, max_norm)
    ref_norm = torch.nn.utils.clip_grad_norm_(ref, max_norm)
    assert torch.allclose(norm, ref_norm)
    for a, b in zip(ours[:2], ref[:2], strict=True):
        assert torch.allclose(a.grad, b.grad)
    if max_norm < 1:
        assert torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in ours[:2]])) <= max_norm + 1e-5
