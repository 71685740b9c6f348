"""GRS on known curves, `rlcli eval --shift` on a real run, and the aggregate statistics (vs hand and rliable)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlcli.config.fields import ConfigError
from rlcli.evaluation.aggregate import aggregate_iqm, aggregate_mean, stratified_bootstrap_ci, summarize
from rlcli.evaluation.grs import grs_score, parse_levels

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "rlcli.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


# --- the GRS formula -------------------------------------------------------------------------------------
LEVELS = [0.0, 0.25, 0.5, 0.75, 1.0]


def test_flat_curve_scores_one_and_linear_fall_to_zero_scores_half():
    assert grs_score(LEVELS, [200.0] * 5) == pytest.approx(1.0)
    assert grs_score(LEVELS, [400.0, 300.0, 200.0, 100.0, 0.0]) == pytest.approx(0.5)


def test_trapezoid_on_uneven_levels_normalised_by_level_range():
    # levels 0, 0.2, 1 with returns 100, 50, 50 -> p = 1, .5, .5
    # area = 0.2 * (1 + .5) / 2 + 0.8 * (.5 + .5) / 2 = 0.15 + 0.4 = 0.55 over a range of 1
    assert grs_score([0.0, 0.2, 1.0], [100.0, 50.0, 50.0]) == pytest.approx(0.55)
    # the same shape on levels 0.5..1 (range 0.5): area 0.1 * 1.5 / 2 + 0.4 * 1 / 2 = 0.275, / 0.5 = 0.55
    assert grs_score([0.5, 0.6, 1.0], [100.0, 50.0, 50.0]) == pytest.approx(0.55)


def test_better_under_shift_exceeds_one_and_no_level0_performance_is_nan():
    assert grs_score([0.0, 1.0], [100.0, 200.0]) == pytest.approx(1.5)
    assert math.isnan(grs_score([0.0, 1.0], [0.0, 10.0]))
    assert math.isnan(grs_score([0.0, 1.0], [-5.0, 10.0]))


def test_levels_are_checked():
    assert parse_levels("1,0,0.5") == [0.0, 0.5, 1.0]
    for bad in ("0", "0,1.5", "a,b", "0.5,0.5"):
        with pytest.raises(ConfigError):
            parse_levels(bad)
    with pytest.raises(ValueError):
        grs_score([0.0, 0.0], [1.0, 1.0])


def test_eval_shift_stores_the_curve_with_the_run(tmp_path):
    import rlcli
    from rlcli.evaluation.grs import evaluate_shift
    from rlcli.storage.shift import read_shift

    cfg = rlcli.resolve_config("ppo", env="cartpole", extra={"run": {"total_steps": 512, "runs_dir": str(tmp_path),
                                                                     "name": "r", "eval_episodes": 2}})
    rlcli.train(cfg)
    result = evaluate_shift(tmp_path / "r", "0,0.5,1", episodes=3)
    assert result.path == tmp_path / "r" / "shift.h5"
    stored = read_shift(result.path)
    assert stored.levels.tolist() == [0.0, 0.5, 1.0] and stored.returns.shape == (3, 3)
    np.testing.assert_array_equal(stored.returns, result.returns)
    assert stored.grs == pytest.approx(grs_score(stored.levels, stored.returns.mean(axis=1)))
    # a lone checkpoint file gets its curve beside it
    lone = tmp_path / "lone.h5"
    lone.write_bytes((tmp_path / "r" / "checkpoints" / "last.h5").read_bytes())
    again = evaluate_shift(lone, [0.0, 0.5, 1.0], episodes=3)
    assert again.path == tmp_path / "lone.shift.h5"
    np.testing.assert_array_equal(again.returns, stored.returns)  # fixed evaluation seeds
    bad = run_cli("eval", str(tmp_path / "r"), "--shift", "0,2")
    assert bad.returncode == 2 and "[0, 1]" in bad.stderr


# --- aggregate statistics --------------------------------------------------------------------------------
def test_point_estimates_by_hand():
    scores = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])  # 4 runs x 2 tasks
    assert aggregate_mean(scores) == pytest.approx((2.5 + 25.0) / 2)
    # IQM: 8 scores sorted 1 2 3 4 10 20 30 40, drop 2 from each end -> mean(3, 4, 10, 20)
    assert aggregate_iqm(scores) == pytest.approx(9.25)
    # 3 runs: int(0.75) = 0 trimmed, the IQM is the mean
    assert aggregate_iqm(np.array([[1.0], [2.0], [9.0]])) == pytest.approx(4.0)


def test_bootstrap_intervals_by_hand():
    const = stratified_bootstrap_ci([5.0, 5.0, 5.0], aggregate_mean, reps=1000)
    assert (const.value, const.low, const.high) == (5.0, 5.0, 5.0)
    # two runs 0 and 1: resampled means are 0 (p=1/4), .5 (1/2), 1 (1/4) -> 95% interval [0, 1]
    two = stratified_bootstrap_ci([0.0, 1.0], aggregate_mean, reps=20000)
    assert (two.value, two.low, two.high) == (0.5, 0.0, 1.0)
    # stratified: each task resamples its own runs, so a task whose runs agree adds no width
    est = stratified_bootstrap_ci(np.array([[0.0, 7.0], [1.0, 7.0]]), aggregate_mean, reps=20000)
    assert (est.low, est.high) == (pytest.approx(3.5), pytest.approx(4.0))


def test_matches_rliable():
    from rliable import library, metrics

    rng = np.random.default_rng(3)
    scores = rng.normal(size=(5, 3))
    ours = summarize(scores, reps=20000)
    np.random.seed(0)  # rliable draws its resamples from numpy's global generator
    points, intervals = library.get_interval_estimates(
        {"x": scores}, lambda s: np.array([metrics.aggregate_mean(s), metrics.aggregate_iqm(s)]), reps=10000)
    assert ours["mean"].value == pytest.approx(points["x"][0])
    assert ours["iqm"].value == pytest.approx(points["x"][1])
    for i, key in enumerate(("mean", "iqm")):
        assert ours[key].low == pytest.approx(intervals["x"][0, i], abs=0.05)
        assert ours[key].high == pytest.approx(intervals["x"][1, i], abs=0.05)
