"""run.precision (bf16 autocast of a learner's forward passes) and run.compile (off: torch._dynamo never loads)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rlcli
from rlcli.config.fields import ConfigError
from rlcli.config.presets import resolve_config
from rlcli.registry import algorithm_class
from rlcli.storage.metrics import read_metrics

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def _vit_ppo(tmp_path: Path, precision: str) -> tuple[dict[str, float], set[torch.dtype]]:
    """One PPO iteration of the ViT policy on CartPole; (first logged losses, dtypes of the policy's outputs)."""
    cfg = resolve_config("ppo", env="cartpole", overrides=[
        "policy.name=vit-consistent-dropout", "ppo.num_steps=32", "run.total_steps=128", "run.eval_episodes=1",
        f"run.precision={precision}", f"run.runs_dir={tmp_path}", f"run.name={precision}"])
    dtypes: set[torch.dtype] = set()

    def build(c, device):
        algo = algorithm_class("ppo")(c, device)
        algo.policy.register_forward_hook(lambda _m, _i, out: dtypes.add(out[0].dtype))
        return algo

    result = rlcli.train(cfg, algorithm=build)
    metrics = read_metrics(result.run_dir / "metrics.h5")
    return {k: float(metrics[k][0, 1]) for k in ("policy_loss", "value_loss")}, dtypes


def test_bf16_autocast_runs_the_vit_policy_in_bfloat16_with_finite_losses_close_to_fp32(tmp_path):
    fp32, fp32_dtypes = _vit_ppo(tmp_path, "fp32")
    bf16, bf16_dtypes = _vit_ppo(tmp_path, "bf16")
    assert fp32_dtypes == {torch.float32}
    assert torch.bfloat16 in bf16_dtypes  # the rollout's and update's forward passes ran under autocast
    for k in fp32:
        assert math.isfinite(bf16[k])
        assert bf16[k] == pytest.approx(fp32[k], rel=0.1, abs=0.02), k


def test_precision_is_checked():
    with pytest.raises(ConfigError):
        resolve_config("ppo", env="cartpole", overrides=["run.precision=fp16"])


def test_compile_off_never_imports_dynamo(tmp_path):
    code = ("import sys, rlcli; from rlcli.config.presets import resolve_config; "
            f"cfg = resolve_config('ppo', env='cartpole', overrides=['run.total_steps=256', 'run.eval_episodes=1', "
            f"'run.runs_dir={tmp_path}']); rlcli.train(cfg); print('torch._dynamo' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
