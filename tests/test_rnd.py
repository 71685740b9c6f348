"""RND: novelty falls with visits, the ViT's token wiring, exact resume, and an Atari run through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rlcli
from rlcli.config.presets import resolve_config
from rlcli.engine.train import build_algorithm
from rlcli.storage.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def rlcli_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "rlcli.cli.main", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_novelty_of_a_repeated_observation_falls_while_a_novel_one_stays_high():
    cfg = resolve_config("rnd", env="cartpole", overrides=["rnd.warmup_steps=0", "rnd.update_proportion=1.0"])
    algo = build_algorithm(cfg)
    try:
        rng = np.random.default_rng(0)
        states = torch.as_tensor(rng.normal(0, 1, (4096, 4)), dtype=torch.float32)
        algo.obs_rms.update(states)  # the normaliser has seen typical states
        seen = torch.tensor([[0.5, -1.0, 0.8, 0.2]])
        novel = torch.tensor([[-1.5, 1.2, -0.6, -1.8]])
        before_seen, before_novel = float(algo.intrinsic_reward(seen)), float(algo.intrinsic_reward(novel))
        batch = algo.normalized_view(seen.repeat(64, 1))
        for _ in range(300):  # the predictor is trained on the visited observation only
            loss = algo.predictor_loss(batch)
            algo.optimizer.zero_grad()
            loss.backward()
            algo.optimizer.step()
        after_seen, after_novel = float(algo.intrinsic_reward(seen)), float(algo.intrinsic_reward(novel))
    finally:
        algo.close()
    assert after_seen < 0.1 * before_seen
    assert after_novel > 0.5 * before_novel
    assert after_novel > 20 * after_seen


def test_vit_tokens_feed_their_heads():
    from rlcli.nets.vit_explorative import EXPLOIT, EXPLORE, ExplorativeViT

    torch.manual_seed(0)
    net = ExplorativeViT((4, 84, 84), n_actions=6, patch_size=12, dim=32, depth=2, heads=4, mlp_dim=64)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    logits, ext_value, int_value = net.heads(obs)
    tokens, _ = net.encode(obs)
    assert tokens.shape == (3, 2 + 49, 32)
    torch.testing.assert_close(int_value, net.critic_int(tokens[:, EXPLORE]).squeeze(-1))
    torch.testing.assert_close(ext_value, net.critic_ext(tokens[:, EXPLOIT]).squeeze(-1))
    torch.testing.assert_close(logits, net.actor(tokens[:, EXPLORE] + tokens[:, EXPLOIT]))
    # the intrinsic value never reaches the extrinsic head's weights, and vice versa
    int_value.sum().backward()
    assert net.critic_ext.weight.grad is None and net.critic_int.weight.grad.abs().sum() > 0
    assert net.explore_token.grad.abs().sum() > 0
    maps = net.attention_maps(obs)
    assert maps.shape == (3, 2, 7, 7)
    assert torch.all(maps >= 0) and torch.all(maps.sum((2, 3)) <= 1 + 1e-5)
    assert not torch.allclose(maps[:, 0], maps[:, 1])  # two tokens, two different maps


def test_cartpole_resume_is_exact(tmp_path):
    overrides = ["rnd.warmup_steps=16", "ppo.anneal_lr=false", "ppo.num_steps=32", "run.checkpoint_every=256", "run.eval_episodes=2",
                 f"run.runs_dir={tmp_path}"]
    straight = resolve_config("rnd", env="cartpole", overrides=overrides + ["run.total_steps=512"])
    straight.run.name = "straight"
    rlcli.train(straight)
    first = resolve_config("rnd", env="cartpole", overrides=overrides + ["run.total_steps=256"])
    first.run.name = "resumed"
    rlcli.train(first)
    again = resolve_config("rnd", env="cartpole", overrides=overrides + ["run.total_steps=512"])
    again.run.name = "resumed"
    rlcli.train(again, resume=tmp_path / "resumed")
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.h5")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.h5")
    for group in ("model", "rnd"):
        ta, tb = a.tensors(group), b.tensors(group)
        flat_a = {k: v for k, v in _flatten(ta)}
        flat_b = {k: v for k, v in _flatten(tb)}
        assert flat_a.keys() == flat_b.keys()
        for k in flat_a:
            assert np.array_equal(np.asarray(flat_a[k]), np.asarray(flat_b[k])), f"{group}/{k} differs"


def _flatten(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}/")
        else:
            yield f"{prefix}{k}", v


@pytest.mark.parametrize("policy", ["vit-explorative"])
def test_small_pong_run_trains_checkpoints_resumes_and_evaluates_via_cli(tmp_path, policy):
    common = ["--set", "env.num_envs=2", "--set", "ppo.num_steps=64", "--set", "rnd.warmup_steps=32",
              "--set", "ppo.num_epochs=1", "--set", "ppo.num_minibatches=2",
              "--set", "run.eval_episodes=1", "--set", "env.max_episode_steps=150",
              "--set", "run.checkpoint_every=1024", "--set", "env.backend=ale-py",
              "--set", "policy.vit_dim=32", "--set", "policy.vit_mlp_dim=64"]
    r = rlcli_cli("train", "rnd", "--env", "atari:Pong", "--policy", policy, "--steps", "1024", "--name", "pong",
                  "--runs-dir", str(tmp_path), "--quiet", *common, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "pong"
    ckpt = load_checkpoint(run / "checkpoints" / "last.h5")
    assert ckpt.attrs["step"] == 1024
    assert ckpt.has("rnd/obs_rms/mean") and ckpt.has("rnd/int_return_rms/var")
    r = rlcli_cli("train", "--resume", str(run), "--steps", "2048", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(run / "checkpoints" / "last.h5").attrs["step"] == 2048
    from rlcli.storage.metrics import read_metrics

    metrics = read_metrics(run / "metrics.h5")
    for key in ("int_reward_mean", "ext_return", "int_return", "predictor_loss"):
        assert key in metrics
    r = rlcli_cli("eval", str(run), "--episodes", "1", "--video", str(tmp_path / "pong.gif"),
                  "--attention", str(tmp_path / "attention.png"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "pong.gif").stat().st_size > 1000
    assert (tmp_path / "attention.png").stat().st_size > 1000
