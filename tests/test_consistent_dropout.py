"""vit-consistent-dropout: masks stored with their transitions and reused, so PPO's ratio starts at exactly 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlcli.algos.ppo import PPO
from rlcli.config.presets import resolve_config
from rlcli.engine.seeding import seed_everything
from rlcli.engine.timing import PhaseTimer
from rlcli.nets.policies import make_policy
from rlcli.nets.vit_consistent_dropout import MASK_PREFIX, ViTConsistentDropout
from rlcli.storage.metrics import read_metrics

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)  # as run.torch_threads does for training; small nets run fastest on one thread


def vit_cfg(*overrides: str, algo: str = "ppo"):
    return resolve_config(algo, env="cartpole", overrides=["policy.name=vit-consistent-dropout", *overrides])


def first_minibatch_ratio(consistent: bool, algo_name: str = "ppo") -> torch.Tensor:
    """pi_new / pi_old of every sample of the first minibatch of the first epoch of a real PPO/VAPOR iteration."""
    from rlcli.registry import algorithm_class

    seed_everything(0)
    cfg = vit_cfg(f"policy.consistent_dropout={str(consistent).lower()}", "ppo.num_steps=32", algo=algo_name)
    algo = algorithm_class(algo_name)(cfg, torch.device("cpu"))
    seen: list[torch.Tensor] = []
    loss_fn = algo.policy_loss

    def recording_loss(new_logprob, entropy, mb, advantages):
        if not seen:
            seen.append((new_logprob - mb["logprobs"]).exp().detach())
        return loss_fn(new_logprob, entropy, mb, advantages)

    algo.policy_loss = recording_loss
    algo.iteration(PhaseTimer())
    algo.close()
    return seen[0]


def test_ratio_is_one_at_first_minibatch_with_consistent_dropout_only():
    ratio = first_minibatch_ratio(consistent=True)
    assert ratio.numel() == 32  # 4 envs x 32 steps / 4 minibatches
    assert (ratio - 1).abs().max().item() < 1e-6
    ordinary = first_minibatch_ratio(consistent=False)
    assert (ordinary - 1).abs().max().item() > 1e-3
    vapor = first_minibatch_ratio(consistent=True, algo_name="vapor")  # VAPOR reuses the masks the same way
    assert (vapor - 1).abs().max().item() < 1e-6


def collected(num_steps: int = 64, **overrides: str):
    seed_everything(0)
    cfg = vit_cfg(f"ppo.num_steps={num_steps}")
    algo = PPO(cfg, torch.device("cpu"))
    algo.collector.collect(PhaseTimer())
    return algo


def test_stored_masks_have_declared_shapes_and_differ_across_steps():
    algo = collected()
    spec = algo.policy.experience_spec()
    # 2 encoder layers (cross + 1 self) x (attn, mlp) + 2 actor hidden layers
    assert sorted(spec) == sorted([f"{MASK_PREFIX}encoder.{i}.{s}" for i in (0, 1) for s in ("attn", "mlp")]
                                  + [f"{MASK_PREFIX}actor.0", f"{MASK_PREFIX}actor.1"])
    buf = algo.collector.buffer
    for key, s in spec.items():
        masks = buf[key]
        assert masks.shape == (64, 4, *s.shape) and masks.dtype == torch.bool
        expected = (8, 64) if "encoder" in key else (64,)
        assert s.shape == expected
        assert abs(masks.float().mean().item() - 0.8) < 0.02  # keep probability 1 - policy.dropout_p
        flat = masks.reshape(64, 4, -1)
        assert (flat[1:] != flat[:-1]).any(-1).all(), f"{key}: a mask repeats from one step to the next"
    algo.close()


def test_masks_never_leak_across_episodes_or_envs():
    algo = collected(num_steps=160)
    buf = algo.collector.buffer
    keys = list(algo.policy.experience_spec())
    masks = torch.cat([buf[k].reshape(160, 4, -1) for k in keys], dim=-1)  # (T, B, all units)
    dones = buf["dones"].bool()
    boundaries = dones[:-1].nonzero().tolist()
    assert boundaries, "no episode ended in 160 steps"
    for t, i in boundaries:  # the first step of the next episode draws a new mask
        assert (masks[t + 1, i] != masks[t, i]).any()
    for i in range(4):
        for j in range(i + 1, 4):
            assert (masks[:, i] != masks[:, j]).any(-1).all(), f"envs {i} and {j} share a mask"
    # each stored mask belongs to its own transition: shuffled, the stored masks reproduce every stored
    # log-prob; masks moved to the neighbouring env do not
    flat = buf.flat()
    perm = torch.randperm(flat["obs"].shape[0])
    extras = {k: flat[k][perm] for k in keys}
    with torch.no_grad():
        logp, _, _ = algo.policy.evaluate(flat["obs"][perm], flat["actions"][perm], extras)
        assert torch.allclose(logp, flat["logprobs"][perm], atol=1e-6)
        rolled = {k: buf[k].roll(1, dims=1).reshape(flat[k].shape) for k in keys}
        wrong, _, _ = algo.policy.evaluate(flat["obs"], flat["actions"], rolled)
        assert (wrong - flat["logprobs"]).abs().max() > 1e-3
    algo.close()


def test_eval_mode_has_no_dropout():
    seed_everything(0)
    cfg = vit_cfg()
    from rlcli.envs.registry import make_vec_env

    env = make_vec_env(cfg.env, 0)
    policy = make_policy(cfg.policy, env.single_observation_space, env.single_action_space)
    obs = torch.as_tensor(env.reset(seed=0)[0])
    policy.eval()
    step = policy.act(obs, deterministic=True)
    assert step.extras == {}
    masks = policy.sample_extras(obs.shape[0])
    with torch.no_grad():
        a, _ = policy(obs, None)
        b, _ = policy(obs, masks)  # masks are ignored in eval mode
        policy.train()
        c, _ = policy(obs, masks)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    env.close()


@pytest.mark.parametrize("shape, dtype, kind, tokens", [
    ((4,), np.float32, "vector", 4),  # CartPole: one token per feature
    ((7, 7, 3), np.uint8, "grid", 49),  # MiniGrid: one token per cell
    ((64, 64, 3), np.uint8, "patches", 64),  # Procgen frame, 8 x 8 patches
    ((4, 84, 84), np.uint8, "patches", 121),  # Atari stack, channels first, padded to 88 x 88
])
def test_tokenizers_for_every_observation_type(shape, dtype, kind, tokens):
    import gymnasium as gym

    cfg = vit_cfg("policy.perceiver_dim=32", "policy.perceiver_latents=4")
    high = 255 if dtype == np.uint8 else 1.0
    space = gym.spaces.Box(0, high, shape, dtype)
    policy = make_policy(cfg.policy, space, gym.spaces.Discrete(5))
    assert isinstance(policy, ViTConsistentDropout)
    tok = policy.encoder.tokenizer
    assert (tok.kind, tok.num_tokens) == (kind, tokens)
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(3)]))
    assert tok(obs).shape == (3, tokens, 32)
    step = policy.act(obs)
    assert step.logprob.shape == (3,)
    for key, s in policy.experience_spec().items():
        assert step.extras[key].shape == (3, *s.shape)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "rlcli.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_ppo_with_consistent_dropout_learns_cartpole_and_mc_dropout_eval(tmp_path):
    """Budget: 10,240 env steps (CleanRL's PPO settings, 4 envs x 128 steps, with ppo.learning_rate=1e-3 and the
    default vit-consistent-dropout: 8 latents x 64, 1 self-attention layer, dropout 0.2), seed 0; then the
    10-episode deterministic eval is at least 475."""
    import rlcli

    cfg = vit_cfg("run.total_steps=10240", "ppo.learning_rate=1e-3", f"run.runs_dir={tmp_path}", "run.name=vit",
                  "run.checkpoint_every=0")
    result = rlcli.train(cfg)
    assert result.final_eval_return >= 475
    run = tmp_path / "vit"
    assert read_metrics(run / "metrics.h5")["eval_return"][-1, 1] >= 475

    short = ["--set", "env.max_episode_steps=50"]  # MC-dropout episodes of at most 50 steps, to save time
    result = cli("eval", str(run), "--mc-dropout", "8", "--episodes", "2", *short, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "8 dropout masks per step" in result.stdout and "action-probability std" in result.stdout
    mc = rlcli.mc_dropout_evaluate(run, 8, episodes=2, overrides=["env.max_episode_steps=50"])
    assert list(mc.lengths) == [50, 50]
    assert 0 < mc.prob_std <= mc.prob_std_max <= 0.5
    assert 0 <= mc.disagreement <= 1

    plain = resolve_config("ppo", env="cartpole", overrides=["run.total_steps=512", f"run.runs_dir={tmp_path}",
                                                             "run.name=mlp"])
    rlcli.train(plain)
    result = cli("eval", str(tmp_path / "mlp"), "--mc-dropout", "4", cwd=tmp_path)
    assert result.returncode == 2 and "needs a policy with dropout" in result.stderr
