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
               "--set", "collect.num_test_tasks=2", "--set", "collect.num_validation_tasks=2",
               "--set", "collect.histories_per_task=2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "12 agents, 12 histories" in r.stdout
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
    assert "A2C source agents" in r.stdout
    # the default repeats give at least 92 runs; the figure states n and its CI
    assert re.search(r"last 4 of 4 episodes: [\d.]+ \(95% CI [\d.]+-[\d.]+\), n = 92 runs \(2 tasks x 46\)", r.stdout), r.stdout
    for label in ("AD in context", "uniform random", "random walk \\+ return", "sweep \\+ return \\(bound\\)"):
        assert re.search(label + r"\s+│\s+[\d.]+ │\s+[\d.]+ │\s+[\d.]+-[\d.]+ │\s+92 │", r.stdout), r.stdout
    assert (run / "eval" / "in_context.png").is_file()
    # --tasks validation plays the validation tasks; --seed reaches the sampling, which it makes repeatable
    r = _rlcli("eval", str(run), "--tasks", "validation", "--episodes", "4", "--repeats", "3", "--gifs", "0",
               "--seed", "5", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    from rlcli.ad.evaluate import evaluate_ad

    again = evaluate_ad(run, tasks="validation", episodes=4, repeats=3, gifs=0, seed=5, out_dir=tmp_path / "again")
    assert "n = 6 runs (2 tasks x 3)" in r.stdout and again.summary(4) in r.stdout.replace("\n", " ")
    # the baselines play the same tasks with the evaluation's seeds (run r: seed + r), and the printed row
    # is their bootstrap estimate over those runs
    from rlcli.ad.baselines import baseline_returns
    from rlcli.ad.distill import load_ad_model
    from rlcli.storage.checkpoint import load_checkpoint

    env_params = load_ad_model(load_checkpoint(again.checkpoint))[2]
    walk = baseline_returns("random_walk_then_return", again.tasks, 4, env_params, seeds=[5, 6, 7])
    np.testing.assert_array_equal(again.baselines["random_walk_then_return"], walk)
    mean, low, high = next(a for a in again.agents() if a.name == "random_walk_then_return").estimate(1, 4, seed=5)
    assert mean == pytest.approx(walk.mean()) and low <= mean <= high
    assert re.search(rf"random walk \+ return\s+│\s+{walk[:, 0].mean():.2f} │\s+{mean:.2f} │\s+{low:.2f}-{high:.2f} │"
                     r"\s+6 │", r.stdout), r.stdout
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


def test_short_histories_train_through_a_masked_padded_window_and_evaluation_uses_validation(tmp_path):
    from rlcli.ad.distill import AD
    from rlcli.config.presets import resolve_config
    from rlcli.engine.timing import PhaseTimer
    from rlcli.storage.histories import HistorySpec, HistoryWriter

    # every training history (12 and 7 transitions) is shorter than the 16-transition context
    rng = np.random.default_rng(0)
    path = tmp_path / "short.h5"
    w = HistoryWriter(path, [HistorySpec(3, "train", 0, 0), HistorySpec(5, "train", 1, 0)],
                      {"size": 9, "max_steps": 20, "terminate_on_goal": True, "num_actions": 5, "num_states": 81},
                      [3, 5], [7, 8], [3, 5], ["train", "train"], other_tasks={"validation": [9]})
    chunk = {"obs": rng.integers(0, 81, (2, 12)), "action": rng.integers(0, 5, (2, 12)),
             "next_obs": rng.integers(0, 81, (2, 12)), "reward": np.zeros((2, 12), np.float32),
             "done": np.zeros((2, 12), bool), "time_step": np.tile(np.arange(12), (2, 1))}
    w.append(keep=np.stack([np.ones(12, bool), np.arange(12) < 7]), **chunk)
    w.close()
    cfg = resolve_config("ad", env="darkroom", preset="darkroom-ad-small", overrides=[
        f"ad.histories={path}", "ad.context_len=16", "ad.embed_dim=16", "ad.num_layers=1", "ad.ff_dim=32",
        "ad.batch_size=8", "ad.residual_dropout=0", "ad.success_window_fraction=0", "ad.eval_episodes=2"])
    algo = AD(cfg, torch.device("cpu"))  # before: "no training history holds a full context"
    losses = [algo.iteration(PhaseTimer()).metrics["loss"] for _ in range(3)]
    assert all(np.isfinite(losses))
    # the padding cannot reach the real positions (causal attention), so the masked loss is that of the
    # history alone: the logits at its 7 positions are the same with and without the 9 padded ones
    model = algo.model.eval()
    t = {k: torch.from_numpy(v[1:2].astype(np.int64)) for k, v in chunk.items() if k != "done"}
    args = (t["obs"], t["action"], t["reward"], t["time_step"], t["next_obs"])
    with torch.no_grad():
        alone = model(*(x[:, :7] for x in args))
        padded = model(*(torch.cat([x[:, :7], torch.zeros(1, 9, dtype=torch.long)], 1) for x in args))
    torch.testing.assert_close(padded[:, :7], alone, atol=1e-6, rtol=0)
    # the loop's evaluation (and so best.h5) plays the one validation task, ad.eval_repeats times, not the tests
    returns, lengths = algo.evaluate(cfg, episodes=0)
    assert len(returns) == 1 * cfg.ad.eval_repeats == 3 and (lengths > 0).all()
    algo.close()
    from rlcli.config.fields import ConfigError

    with pytest.raises(ConfigError, match="eval_tasks"):  # the test tasks are not a choice during training
        resolve_config("ad", env="darkroom", preset="darkroom-ad-small", overrides=["ad.eval_tasks=test"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the choice on a machine without a GPU")
def test_distill_without_a_preset_picks_the_cpu_model_without_a_gpu_and_says_so(tmp_path):
    # --dry-run checks the histories file as a run would, so there must be one (a tiny collection)
    r = _rlcli("collect", "darkroom", "--out", "data.h5", "--tasks", "2", "--steps", "1000", "-q",
               "--set", "collect.num_test_tasks=1", "--set", "collect.histories_per_task=1",
               "--set", "collect.test_histories_per_task=0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _rlcli("distill", "darkroom", "--histories", "data.h5", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == ("no GPU: the CPU-sized model (preset darkroom-ad-small); --preset darkroom-ad for "
                                "the full-size one (hours per thousand steps on a CPU)")
    assert "context_len = 96" in r.stdout and "num_layers = 2" in r.stdout
    from rlcli.ad.distill import distill_config

    cfg, note = distill_config("darkroom", "darkroom-ad", [], None)  # a preset given: no choice, no note
    assert note is None and cfg.ad.context_len == 256
