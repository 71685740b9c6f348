"""Algorithm Distillation: state encodings, in-context rollouts, schedules, and collect -> distill -> eval
end to end through the real CLI (the KV-cache: test_ad_cache.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlcli.ad.distill import cosine_lr
from rlcli.envs.darkroom import task_goal
from rlcli.nets.ad_transformer import ADModelConfig, ADTransformer

ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)  # small tensors: one thread is fastest, and the machine is shared


def _model(positions="time_step", context_len=5, state_encoding="cell", next_state=False):
    torch.manual_seed(0)
    cfg = ADModelConfig(81, 5, 20, context_len=context_len, embed_dim=32, num_layers=3, num_heads=4, ff_dim=64,
                        positions=positions, state_encoding=state_encoding, grid_size=9, next_state=next_state)
    return ADTransformer(cfg).eval()


def test_ordinal_state_encoding_orders_rows_and_columns():
    # a change to row 5's vector moves the code of every row from 5 on the same way and no row before it:
    # what the model learns about "below row r" carries over to every cell below it
    model = _model(state_encoding="row_col_ordinal")
    cells = torch.arange(81)
    before = model.encode_states(cells).detach()
    with torch.no_grad():
        model.row_emb.weight[5] += 1.0
    shift = (model.encode_states(cells).detach() - before).reshape(9, 9, -1)  # (row, col, D)
    assert shift[:5].abs().max() == 0
    torch.testing.assert_close(shift[5:], torch.ones_like(shift[5:]))
    # rows and columns stay separable: a cell's code is its row part plus its column part
    codes = before.reshape(9, 9, -1)
    torch.testing.assert_close(codes[2, 7] - codes[2, 1], codes[6, 7] - codes[6, 1])


def _stream(b, t, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 81, (b, t), generator=g), torch.randint(0, 5, (b, t), generator=g),
            torch.randint(0, 2, (b, t), generator=g), torch.randint(0, 20, (b, t), generator=g),
            torch.randint(0, 81, (b, t), generator=g))


@torch.no_grad()
def test_row_col_state_encoding_is_the_sum_of_a_row_and_a_column_embedding():
    model = _model(state_encoding="row_col")
    cells = torch.tensor([0, 8, 40, 80, 3 * 9 + 5])
    expected = model.row_emb(cells // 9) + model.col_emb(cells % 9)
    torch.testing.assert_close(model.encode_states(cells), expected)
    # 2 x 9 embeddings instead of 81: cells of one row share its row embedding
    assert sum(p.numel() for p in model.row_emb.parameters()) == 9 * 32
    with pytest.raises(ValueError, match="grid_size"):
        ADTransformer(ADModelConfig(80, 5, 20, state_encoding="row_col", grid_size=9))


def test_in_context_rollout_with_both_position_kinds():
    from rlcli.ad.in_context import run_in_context

    params = {"size": 9, "max_steps": 20, "terminate_on_goal": True}
    for positions, next_state in (("time_step", False), ("learned", False), ("time_step", True)):
        model = _model(positions, context_len=8, next_state=next_state)
        r = run_in_context(model, [0, 31, 79], 3, params, seed=0)
        assert r.returns.shape == (3, 3) and set(np.unique(r.returns)) <= {0.0, 1.0}
        assert ((r.lengths >= 1) & (r.lengths <= 20)).all()
        assert r.dones.sum(1).min() >= 3  # every row finished its 3 episodes
        assert (r.returns == (r.lengths < 20)).all()  # seed variant: success <=> ended before the limit
        for row, task in enumerate([0, 31, 79]):  # the recorded path ends on the goal exactly when it succeeded
            row_goal = task_goal(task)
            ends = np.flatnonzero(r.dones[row])[:3]
            assert ((r.cells[row, ends] == row_goal[0] * 9 + row_goal[1]) == (r.returns[row] == 1)).all()


def test_cosine_schedule():
    assert cosine_lr(0, 100, 3e-4, 2e-6, 0) == pytest.approx(3e-4)
    assert cosine_lr(50, 100, 3e-4, 2e-6, 0) == pytest.approx((3e-4 + 2e-6) / 2)
    assert cosine_lr(100, 100, 3e-4, 2e-6, 0) == pytest.approx(2e-6)
    assert cosine_lr(4, 100, 3e-4, 2e-6, 10) == pytest.approx(3e-4 * 5 / 10)


def _rlcli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "rlcli.cli.main", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_collect_distill_eval_end_to_end(tmp_path):
    data = tmp_path / "data.h5"
    r = _rlcli("collect", "darkroom", "--out", str(data), "--tasks", "4", "--steps", "3000", "-q",
               "--set", "collect.num_test_tasks=2", "--set", "collect.histories_per_task=2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "10 agents, 10 histories" in r.stdout
    small = ["--set", "ad.context_len=20", "--set", "ad.embed_dim=16", "--set", "ad.num_layers=1",
             "--set", "ad.ff_dim=32", "--set", "ad.eval_episodes=3", "--set", "ad.batch_size=4"]
    r = _rlcli("distill", "darkroom", "--histories", "data.h5", "--steps", "6", "--runs-dir", str(tmp_path / "runs"),
               "--name", "ad", "-q", "--tensorboard", "--set", "run.eval_every=3", *small, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "in-context return" in r.stdout
    assert re.search(r"step 6/6 .* loss \d+\.\d{3}  acc \d+\.\d%", r.stderr), r.stderr  # the progress line
    run = tmp_path / "runs" / "ad"
    from rlcli.storage.metrics import read_metrics

    m = read_metrics(run / "metrics.h5")
    assert {"loss", "accuracy", "learning_rate", "eval_return", "eval_first_episodes_return"} <= set(m)
    assert m["loss"].shape[0] == 6 and m["eval_return"][:, 0].tolist() == [3.0, 6.0]
    assert m["eval_first_episode_return"][:, 0].tolist() == [3.0, 6.0]
    assert 0.0 <= m["eval_first_episodes_return"][:, 1].min() <= m["eval_first_episodes_return"][:, 1].max() <= 1.0
    elsewhere = tmp_path / "elsewhere"  # the relative --histories still leads to the A2C baseline
    elsewhere.mkdir()
    r = _rlcli("eval", str(run), "--tasks", "test", "--episodes", "4", "--gifs", "2", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert "A2C source agents" in r.stdout and "last 4 episodes" in r.stdout
    assert re.search(r"│\s+1 │\s+[\d.]+ │\s+[\d.]+ │", r.stdout), r.stdout
    assert (run / "eval" / "in_context.png").is_file()
    assert len(list((run / "eval").glob("path-task*.gif"))) == 2
    # resume continues the run to more steps
    r = _rlcli("distill", "darkroom", "--resume", str(run), "--steps", "8", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_metrics(run / "metrics.h5")["loss"].shape[0] == 8
    # user errors exit 2 with one line
    r = _rlcli("distill", "darkroom", "--histories", str(tmp_path / "missing.h5"), "--runs-dir",
               str(tmp_path / "runs"), "-q", *small, cwd=tmp_path)
    assert r.returncode == 2 and "missing.h5" in r.stderr and "Traceback" not in r.stderr
    r = _rlcli("collect", "darkroom", "--out", str(data), "-q", cwd=tmp_path)
    assert r.returncode == 2 and "complete" in r.stderr
