"""The in-context evaluation split across Ray tasks: every run samples from its own seed, so a run plays the
same in any batch, and ``rlcli eval AD_RUN --ray ADDRESS`` on a local two-node cluster prints the table of
the evaluation without Ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from test_ray import cluster  # noqa: F401 (the module's two-node cluster fixture)

TINY_AD = ["--set", "ad.context_len=20", "--set", "ad.embed_dim=16", "--set", "ad.num_layers=1",
           "--set", "ad.ff_dim=32", "--set", "ad.eval_episodes=2", "--set", "ad.batch_size=4"]
EVAL = ["--tasks", "train", "--repeats", "3", "--episodes", "3", "--gifs", "1", "--seed", "7"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A real tiny AD run (``ad``) and a real PPO run (``ppo``)."""
    root = tmp_path_factory.mktemp("runs")
    run_cli("collect", "darkroom", "--out", str(root / "data.h5"), "--tasks", "2", "--steps", "1000", "-q",
            "--set", "collect.num_test_tasks=1", "--set", "collect.histories_per_task=1",
            "--set", "collect.test_histories_per_task=0", check_rc=0)
    run_cli("distill", "--histories", str(root / "data.h5"), "--steps", "1", "--runs-dir", str(root), "--name", "ad",
            "-q", *TINY_AD, check_rc=0)
    run_cli("train", "ppo", "--env", "cartpole", "--steps", "512", "--set", "run.eval_episodes=1", "--runs-dir",
            str(root), "--name", "ppo", "-q", check_rc=0)
    return root


def test_each_run_plays_the_same_in_any_share_of_the_batch(runs, tmp_path):
    from rlcli.ad.distill import load_ad_model
    from rlcli.ad.evaluate import evaluate_ad, run_seeds
    from rlcli.ad.in_context import run_in_context
    from rlcli.ad.ray_eval import join_rollouts, share_rows
    from rlcli.storage.checkpoint import load_checkpoint

    whole = evaluate_ad(runs / "ad", tasks="train", episodes=3, repeats=3, gifs=0, seed=7, out_dir=tmp_path)
    assert whole.returns.shape == (len(whole.tasks) * 3, 3)
    model, _, env_params, _ = load_ad_model(load_checkpoint(runs / "ad" / "checkpoints" / "last.h5"))
    tasks = [t for t in whole.tasks for _ in range(3)]
    seeds = run_seeds(7, whole.tasks, 3)
    assert len(set(seeds)) == len(seeds)
    assert share_rows(len(tasks), 4)[0] == range(0, len(tasks) // 4)
    parts = [run_in_context(model, [tasks[i] for i in rows], 3, env_params, row_seeds=[seeds[i] for i in rows])
             for rows in share_rows(len(tasks), 4)]
    joined = join_rollouts(parts)
    assert np.array_equal(joined.returns, whole.returns) and joined.tasks == tasks
    alone = run_in_context(model, tasks[::-1], 3, env_params, row_seeds=seeds[::-1])  # order does not matter
    assert np.array_equal(alone.returns[::-1], whole.returns)
    other = evaluate_ad(runs / "ad", tasks="train", episodes=3, repeats=3, gifs=0, seed=8, out_dir=tmp_path)
    assert not np.array_equal(other.returns, whole.returns)  # the seed still matters


def test_eval_on_a_two_node_ray_cluster_prints_the_local_table(runs, cluster):  # noqa: F811
    from rlcli.ad.evaluate import evaluate_ad

    local = run_cli("eval", str(runs / "ad"), *EVAL, check_rc=0)
    on_ray = run_cli("eval", str(runs / "ad"), *EVAL, "--ray", cluster, check_rc=0)
    assert on_ray.stdout == local.stdout and "AD in context" in local.stdout
    here = evaluate_ad(runs / "ad", tasks="train", episodes=3, repeats=3, gifs=0, seed=7)
    shared = evaluate_ad(runs / "ad", tasks="train", episodes=3, repeats=3, gifs=0, seed=7, ray=cluster)
    assert np.array_equal(shared.returns, here.returns)


def test_ray_on_a_run_that_is_not_ad_exits_2(runs):
    r = run_cli("eval", str(runs / "ppo"), "--ray", "auto", check_rc=2)
    assert "--ray has no effect on a ppo run" in r.stderr and len(r.stderr.strip().splitlines()) == 1
