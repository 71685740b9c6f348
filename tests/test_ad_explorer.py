"""The explorer source of Algorithm Distillation histories (``collect.source = "explorer"``) and
``rlcli eval --compare-histories``: real collections, a real distill and real CLI processes."""

import os
import re

import numpy as np
import pytest
import torch

from rlcli.envs.darkroom import SIZE, task_goal
from rlcli.storage.histories import HistoryReader

torch.set_num_threads(1)


def _cfg(*extra, seed=0, steps=600):
    from rlcli.config.presets import resolve_config

    return resolve_config("ad", env="darkroom", preset="darkroom-ad", overrides=[
        "collect.source=explorer", f"run.seed={seed}", "collect.num_test_tasks=3", "collect.num_validation_tasks=2",
        "collect.max_train_tasks=6", "collect.histories_per_task=2", f"collect.steps_per_agent={steps * 10}",
        "collect.streams_per_agent=10", "collect.episode_stride=1", "collect.dense_until_success=false",
        "collect.skip_after_success=0", "collect.checkpoint_every=7", "collect.flush_every=3", *extra])


def _episodes(history: dict) -> list[dict]:
    ends = np.flatnonzero(history["done"])
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [{k: v[s:e + 1] for k, v in history.items()} for s, e in zip(starts, ends, strict=True)]


def _to_unvisited(cell: tuple[int, int], visited: set) -> int:
    return min(abs(r - cell[0]) + abs(c - cell[1]) for r in range(SIZE) for c in range(SIZE)
               if (r, c) not in visited)


def test_the_explorer_covers_the_room_then_goes_straight_to_the_goal(tmp_path):
    from rlcli.ad.collect import collect

    out = tmp_path / "explorer.h5"
    collect(_cfg(), out)
    centre = (SIZE // 2, SIZE // 2)
    found_at = []
    with HistoryReader(out) as reader:
        assert len(reader.histories) == (6 * 2 + 5) * 10
        for info in reader.histories:
            episodes = _episodes(reader.read(info.index))
            returns = np.array([e["reward"].sum() for e in episodes])
            first = int(np.argmax(returns > 0))
            assert returns[first] == 1
            found_at.append(first + 1)
            goal = task_goal(info.task)
            visited = {centre}
            for e in episodes[:first]:  # before the goal: every step heads for the nearest unvisited cell
                assert len(e["obs"]) == 20 and e["reward"].sum() == 0
                for cell, nxt in zip(e["obs"], e["next_obs"], strict=True):
                    here, there = divmod(int(cell), SIZE), divmod(int(nxt), SIZE)
                    assert _to_unvisited(there, visited) == _to_unvisited(here, visited) - 1
                    visited.add(there)
            for e in episodes[first + 1:]:  # after it: straight there, every episode
                assert len(e["obs"]) == abs(goal[0] - centre[0]) + abs(goal[1] - centre[1])
                assert e["reward"].sum() == 1
    # a random walk has found the goal by episode 10 in ~0.6 of runs; the explorer in every one by episode 8
    assert max(found_at) <= 8 and np.mean(found_at) < 5


def test_the_explorer_noise_decays_over_the_first_episodes():
    from rlcli.ad.collect import Collection

    cfg = _cfg("collect.noise_start=0.5", "collect.noise_end=0.1", "collect.noise_episodes=4")
    explorer = Collection(cfg, torch.device("cpu"), "unused.h5", "").agents
    eps = []
    for _ in range(6):
        eps.append(float(explorer.epsilon()[0, 0]))
        explorer.episode += 1
    np.testing.assert_allclose(eps, [0.5, 0.4, 0.3, 0.2, 0.1, 0.1], atol=1e-6)
    # all-random streams (epsilon 1) draw each action about equally often
    explorer.cc.noise_start = explorer.cc.noise_end = 1.0
    obs = torch.full((explorer.num_agents, explorer.num_envs), 40)
    counts = np.zeros(5)
    for update in range(40):
        for u in explorer.action_noise(update, 10, explorer.num_envs):
            counts += np.bincount(explorer.act(obs, u).reshape(-1).numpy(), minlength=5)
    assert counts.min() / counts.sum() > 0.17


def test_an_interrupted_explorer_collection_resumes_to_the_same_file(tmp_path):
    import os
    import signal

    from rlcli.ad.collect import CollectionInterrupted, collect

    ref, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    collect(_cfg("collect.noise_start=0.3"), ref)
    steps_per_update = (6 * 2 + 5) * 10 * 10

    def ctrl_c(step):
        if step == 11 * steps_per_update:  # between checkpoints (every 7 updates) and flushes (every 3)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(CollectionInterrupted):
        collect(_cfg("collect.noise_start=0.3"), out, callbacks=[ctrl_c])
    assert collect(_cfg("collect.noise_start=0.3"), out).resumed
    with HistoryReader(ref) as a, HistoryReader(out) as b:
        assert len(a.histories) == len(b.histories)
        for i in range(len(a.histories)):
            ha, hb = a.read(i), b.read(i)
            for k in ha:
                np.testing.assert_array_equal(ha[k], hb[k])


def test_eval_compares_the_explorer_run_with_the_a2c_agents_of_another_collection(tmp_path, cli):
    common = ["--set", "collect.num_test_tasks=2", "--set", "collect.num_validation_tasks=2", "--tasks", "3",
              "--set", "collect.histories_per_task=1", "-q"]
    r = cli("collect", "darkroom", "--out", "explorer.h5", "--steps", "1000", *common, "--set",
                "collect.source=explorer", "--set", "collect.episode_stride=1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("collect", "darkroom", "--out", "a2c.h5", "--steps", "2000", *common, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("collect", "darkroom", "--out", "other.h5", "--steps", "1000", "--seed", "1", *common, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # without a preset, distill on a CPU picks the explorer preset for explorer histories, and says so
    r = cli("distill", "darkroom", "--histories", "explorer.h5", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0 and "preset darkroom-ad-explorer)" in r.stderr, r.stderr
    assert 'source = "explorer"' not in r.stdout or "temperature = 1.0" in r.stdout
    r = cli("distill", "darkroom", "--histories", "a2c.h5", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0 and "preset darkroom-ad-small)" in r.stderr, r.stderr
    small = ["--set", "ad.context_len=20", "--set", "ad.embed_dim=16", "--set", "ad.num_layers=1",
             "--set", "ad.ff_dim=32", "--set", "ad.eval_episodes=3", "--set", "ad.batch_size=4"]
    r = cli("distill", "darkroom", "--histories", "explorer.h5", "--steps", "4", "--runs-dir", "runs",
                "--name", "ad", "-q", *small, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("eval", "runs/ad", "--episodes", "4", "--repeats", "2", "--gifs", "0", "--compare-histories",
                "a2c.h5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "explorer source agents" in r.stdout and "A2C agents (a2c.h5)" in r.stdout
    assert "AD samples its actions at temperature 1;" in r.stdout  # the run's ad.temperature
    assert (tmp_path / "runs" / "ad" / "eval" / "in_context.png").is_file()
    # another split, a missing file, a file that is not a collection: exit 2, one line, before any episode
    for bad, why in (("other.h5", "other test tasks"), ("missing.h5", "no histories file"),
                     ("runs/ad/config.toml", "config.toml")):
        r = cli("eval", "runs/ad", "--episodes", "4", "--compare-histories", bad, cwd=tmp_path)
        assert r.returncode == 2 and why in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli("eval", "runs/ad", "--compare-histories", "a2c.h5", "--tasks", "bogus", cwd=tmp_path)
    assert r.returncode == 2
    # --temperature reaches the sampling: near 0 it is the greedy policy, the same whatever the seed
    from rlcli.ad.evaluate import evaluate_ad

    greedy = [evaluate_ad(tmp_path / "runs" / "ad", episodes=3, repeats=1, gifs=0, seed=s, temperature=1e-3,
                          out_dir=tmp_path / "g").returns for s in (1, 2)]
    np.testing.assert_array_equal(*greedy)
    r = cli("eval", "runs/ad", "--episodes", "3", "--repeats", "1", "--gifs", "0", "--temperature", "0.5",
            cwd=tmp_path)
    assert r.returncode == 0 and "at temperature 0.5;" in r.stdout, r.stderr
    r = cli("eval", "runs/ad", "--temperature", "0", cwd=tmp_path)
    assert r.returncode == 2 and "--temperature must be" in r.stderr
    # benchmarks/ad_seeds.py pools seeds: here the same run twice, so each seed's figure is the pooled one
    import subprocess
    import sys

    from conftest import REPO

    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ad_seeds.py"), "--episodes", "3",
                          "runs/ad:a2c.h5", "runs/ad:a2c.h5"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("ad "))
    value = re.search(r"last 3 of 3: ([\d.]+) \(", row).group(1)
    assert "n = 184 |" in row and row.count(f"{value} (") == 3, row  # pooled and both seeds
    assert re.search(r"^A2C .* n = \d+ \|", out.stdout, re.M), out.stdout
    assert "AD minus A2C, seed 1: smallest" in out.stdout and "AD minus random_walk_then_return, pooled" in out.stdout
