"""AD collection sharded over its agents: in this process and on a local two-node Ray cluster, the shards
joined by their index hold the histories of a one-process collection with the same seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_ray import cluster  # noqa: F401 (the module's two-node cluster fixture)

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["collect.num_test_tasks=2", "collect.num_validation_tasks=1", "collect.histories_per_task=2",
         "collect.max_train_tasks=2", "collect.steps_per_agent=2000", "collect.checkpoint_every=2"]


def _cfg():
    from rlcli.cli.collect import ad_config

    return ad_config("darkroom", None, SMALL)


def _assert_same_histories(a: Path, b: Path) -> None:
    from rlcli.storage.histories import HistoryReader

    with HistoryReader(a) as x, HistoryReader(b) as y:
        assert len(x.histories) == len(y.histories) == 7 and x.complete and y.complete
        assert list(x.histories) == list(y.histories)  # task, split, agent, stream and length of each
        for i in range(len(x.histories)):
            hx, hy = x.read(i), y.read(i)
            assert all(np.array_equal(hx[k], hy[k]) for k in hx), f"history {i} differs"
        for u, v in zip(x.curves(), y.curves(), strict=True):
            assert np.array_equal(u, v, equal_nan=u.dtype.kind == "f")
        assert x.task_split == y.task_split and x.config_toml == y.config_toml


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    from rlcli.ad.collect import collect

    out = tmp_path_factory.mktemp("one") / "data.h5"
    collect(_cfg(), out)
    return out


def test_shards_in_one_process_equal_one_collection_and_open_as_one_set(one_process, tmp_path):
    from rlcli.ad.shards import collect_sharded, shard_agents, shard_path
    from rlcli.storage.histories import HistoryReader

    assert shard_agents(7, 3) == [range(0, 2), range(2, 4), range(4, 7)]
    out = tmp_path / "data.h5"
    result = collect_sharded(_cfg(), out, 3)
    assert result.num_agents == 7 and result.num_histories == 7 and not result.resumed
    _assert_same_histories(one_process, out)
    with h5py.File(out, "r") as f:  # the index: virtual transitions over the shards, a fixed set of objects
        assert f["transitions/obs"].is_virtual and f["transitions/obs"].attrs["unit"] == "cell index"
        names: list[str] = []
        f.visit(names.append)
    with h5py.File(one_process, "r") as f:
        plain: list[str] = []
        f.visit(plain.append)
    assert sorted(names) == sorted(plain) and len(names) == 25  # 5 groups, 20 datasets, as a plain file
    moved = tmp_path / "moved"  # the shards are found beside the index wherever the folder goes
    moved.mkdir()
    for p in [out, *(shard_path(out, k) for k in range(3))]:
        p.rename(moved / p.name)
    _assert_same_histories(one_process, moved / "data.h5")
    (moved / "data.shard-001.h5").unlink()  # HDF5 would read a missing source as zeros: the reader refuses
    from rlcli.storage.errors import CorruptFileError

    with pytest.raises(CorruptFileError, match="shard-001.h5' is missing"):
        HistoryReader(moved / "data.h5")


def test_a_rerun_redoes_only_the_killed_shard(one_process, tmp_path):
    from rlcli.ad.collect import collect
    from rlcli.ad.shards import collect_sharded, run_shard, shard_agents, shard_path
    from rlcli.config.fields import ConfigError

    cfg, out = _cfg(), tmp_path / "data.h5"
    first, second = shard_agents(7, 2)
    assert run_shard(cfg, str(out), 0, first).error == ""
    done_at = shard_path(out, 0).stat().st_mtime_ns

    def die(step: int) -> None:  # shard 1's process dies after its checkpoint at update 2, before the end
        if step >= 3 * len(second) * cfg.a2c.num_envs * cfg.a2c.num_steps:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        collect(cfg, shard_path(out, 1), agents=second, callbacks=[die])
    with pytest.raises(ConfigError, match="other agents"):  # a shard file of another --shards is not resumed
        collect(cfg, shard_path(out, 1), agents=range(4, 7))
    with pytest.raises(ConfigError, match="shard of another collection"):  # before any work
        collect_sharded(cfg, out, 3)
    result = collect_sharded(cfg, out, 2)
    assert result.resumed and shard_path(out, 0).stat().st_mtime_ns == done_at  # shard 0 was left alone
    per_update = len(second) * cfg.a2c.num_envs * cfg.a2c.num_steps
    total = -(-cfg.collect.steps_per_agent // (cfg.a2c.num_envs * cfg.a2c.num_steps)) * per_update
    assert result.env_steps == total - 2 * per_update  # shard 1 went on from its checkpoint
    _assert_same_histories(one_process, out)
    with pytest.raises(ConfigError, match="complete collection"):
        collect_sharded(cfg, out, 2)


def test_collect_on_a_two_node_ray_cluster_and_distill_reads_the_index(cluster, one_process, tmp_path):  # noqa: F811
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sets = [arg for s in SMALL for arg in ("--set", s)]
    out = tmp_path / "ray" / "data.h5"
    r = subprocess.run([sys.executable, "-m", "rlcli.cli.main", "collect", "darkroom", "--out", str(out), "-q",
                        "--ray", cluster, "--shards", "2", *sets], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "7 agents, 7 histories" in r.stdout
    _assert_same_histories(one_process, out)
    small = ["--set", "ad.context_len=20", "--set", "ad.embed_dim=16", "--set", "ad.num_layers=1",
             "--set", "ad.ff_dim=32", "--set", "ad.eval_episodes=2", "--set", "ad.batch_size=4"]
    r = subprocess.run([sys.executable, "-m", "rlcli.cli.main", "distill", "darkroom", "--histories", str(out),
                        "--steps", "3", "--runs-dir", str(tmp_path / "runs"), "--name", "ad", "-q", *small],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    from rlcli.storage.metrics import read_metrics

    assert read_metrics(tmp_path / "runs" / "ad" / "metrics.h5")["loss"].shape[0] == 3


def test_bad_shard_counts_exit_2_before_any_work(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sets = [arg for s in SMALL for arg in ("--set", s)]
    for shards in ("0", "8"):
        r = subprocess.run([sys.executable, "-m", "rlcli.cli.main", "collect", "darkroom", "--out",
                            str(tmp_path / "d.h5"), "--shards", shards, *sets], env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 2 and "--shards must be in [1, 7]" in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []
    code = ("import sys, rlcli.ad.shards, rlcli.cli.collect; from rlcli.cli.main import _register; _register(); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_a_shard_that_cannot_write_its_file_fails_with_the_reason(tmp_path):
    from rlcli.ad.shards import run_shard

    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the collection's folder should be: nothing can be created under it
    outcome = run_shard(_cfg(), str(blocker / "ad" / "data.h5"), 1, range(2, 4))
    assert "shard 1" in outcome.error and "storage every node sees" in outcome.error, outcome.error
