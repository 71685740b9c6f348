"""HDF5 learning histories: round trip, partial window reads, windows inside one history, resumable collection."""

import os
import signal

import h5py
import numpy as np
import pytest
import torch

from rlcli.ad.windows import WindowSampler, read_windows
from rlcli.envs.darkroom import task_goal
from rlcli.storage.errors import CorruptFileError
from rlcli.storage.histories import (
    FIELDS,
    HistoryReader,
    HistorySpec,
    HistoryWriter,
    convert_histories,
    episode_returns,
)

torch.set_num_threads(1)  # small tensors: one thread is fastest, and the machine is shared


def _random_chunk(rng, h, t):
    return {"obs": rng.integers(0, 81, (h, t)), "action": rng.integers(0, 5, (h, t)),
            "next_obs": rng.integers(0, 81, (h, t)),
            "reward": rng.integers(0, 2, (h, t)).astype(np.float32), "done": rng.random((h, t)) < 0.1,
            "time_step": rng.integers(0, 20, (h, t))}


def test_round_trip_and_partial_windows(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "h.h5"
    specs = [HistorySpec(3, "train", 0, 0), HistorySpec(3, "train", 0, 1), HistorySpec(7, "test", 1, 0)]
    w = HistoryWriter(path, specs, {"size": 9, "max_steps": 20}, [3, 5], [7], [3, 7], ["train", "test"],
                      "x = 1\n", chunk_size=64)
    chunks = [_random_chunk(rng, 3, 100), _random_chunk(rng, 3, 57)]
    for c in chunks:
        w.append(**c)
    w.append_curve(100, np.array([0.5, 0.25]))
    w.append_curve(200, np.array([0.75, np.nan]))
    w.mark_complete()
    w.close()
    full = {k: np.concatenate([c[k] for c in chunks], axis=1) for k in FIELDS}
    with HistoryReader(path) as r:
        assert r.complete and r.train_tasks == [3, 5] and r.test_tasks == [7] and r.env_params["size"] == 9
        assert [(h.task, h.split, h.length) for h in r.histories] == [(3, "train", 157), (3, "train", 157),
                                                                     (7, "test", 157)]
        assert [h.index for h in r.select("train")] == [0, 1]
        for i in range(3):
            whole = r.read(i)
            for k, dtype in FIELDS.items():
                assert whole[k].dtype == dtype
                np.testing.assert_array_equal(whole[k], full[k][i].astype(dtype))
        win = r.windows([(1, 90), (2, 0), (0, 157 - 32)], 32)  # crosses the append boundary and chunk edges
        for row, (i, s) in enumerate([(1, 90), (2, 0), (0, 125)]):
            for k, dtype in FIELDS.items():
                np.testing.assert_array_equal(win[k][row], full[k][i, s:s + 32].astype(dtype))
        np.testing.assert_array_equal(r.window(2, 10, 5)["obs"], full["obs"][2, 10:15])
        first = int(np.flatnonzero(full["reward"][0])[0])
        assert r.first_reward_end(0, 157) == first + 1 and r.first_reward_end(0, first) == first  # none before
        with pytest.raises(IndexError):
            r.windows([(0, 130)], 32)  # would run past the end of history 0
        steps, returns, tasks, splits = r.curves()
        assert steps.tolist() == [100, 200] and tasks.tolist() == [3, 7] and splits.tolist() == ["train", "test"]
        assert returns[0].tolist() == [0.5, 0.75] and np.isnan(returns[1, 1])
    with h5py.File(path) as f:  # chunked + compressed, so a window decompresses only the chunks it covers
        ds = f["transitions/obs"]
        assert ds.chunks == (64,) and ds.compression == "gzip" and ds.maxshape == (None,)
        assert ds.shape == (3 * 157,) and f["segments/row"].shape == (6,)  # one segment per history and append
        documented = []
        f.visititems(lambda name, obj: documented.append(
            isinstance(obj, h5py.Group) or ("meaning" in obj.attrs and "unit" in obj.attrs)))
        assert all(documented)


def test_episode_returns():
    reward = np.array([0, 0, 1, 0, 1, 1, 0], dtype=np.float32)
    done = np.array([0, 0, 1, 0, 0, 1, 0], dtype=bool)
    assert episode_returns(reward, done).tolist() == [1.0, 2.0]  # the unfinished last episode is left out


def test_windows_never_cross_histories_and_short_histories_are_one_window():
    sampler = WindowSampler([50, 10, 300, 31, 0], [4, 5, 6, 7, 8], 32, seed=0)
    lengths = {4: 50, 5: 10, 6: 300, 7: 31}
    picks = sampler.sample(20000)
    assert all(0 <= s and s + 32 <= lengths[i] for i, s in picks if lengths[i] >= 32)
    assert {s for i, s in picks if lengths[i] < 32} == {0}  # a shorter history: one window from its start
    assert {i for i, _ in picks} == {4, 5, 6, 7}  # every history with transitions is used
    starts6 = {s for i, s in picks if i == 6}
    assert min(starts6) == 0 and max(starts6) == 300 - 32  # every window of a history can be drawn
    # uniform over windows: history 6 has 269 windows, history 4 has 19, histories 5 and 7 one each
    share = sum(i == 6 for i, _ in picks) / len(picks)
    assert abs(share - 269 / 290) < 0.02


def test_short_history_windows_are_padded_with_a_mask(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "h.h5"
    specs = [HistorySpec(3, "train", 0, 0), HistorySpec(3, "train", 1, 0)]
    w = HistoryWriter(path, specs, {"size": 9, "max_steps": 20}, [3], [7], [3, 3], ["train", "train"])
    chunk = _random_chunk(rng, 2, 40)
    w.append(keep=np.stack([np.ones(40, bool), np.arange(40) < 12]), **chunk)  # history 1: 12 transitions
    w.close()
    with HistoryReader(path) as r:
        assert [h.length for h in r.histories] == [40, 12]
        win = read_windows(r, [(1, 0), (0, 5)], 16)
        assert win["mask"][0].tolist() == [True] * 12 + [False] * 4 and win["mask"][1].all()
        for k, dtype in FIELDS.items():
            np.testing.assert_array_equal(win[k][0, :12], chunk[k][1, :12].astype(dtype))
            np.testing.assert_array_equal(win[k][1], chunk[k][0, 5:21].astype(dtype))
        cut = read_windows(r, [(0, 0)], 16, usable={0: 10})  # a history cut by ad.max_history_steps
        assert cut["mask"][0].sum() == 10


def test_success_window_fraction_draws_that_share_from_windows_after_the_first_reward():
    lengths, first = [50, 300, 31, 100], [45, 80, 10, 100]  # history 3 never rewarded (first = its length)
    ends_after = {4: 45, 5: 80, 6: 10, 7: 100}

    def after_share(picks):
        return np.mean([s + min(32, lengths[i - 4]) - 1 >= ends_after[i] for i, s in picks])

    uniform = WindowSampler(lengths, [4, 5, 6, 7], 32, seed=0, first_success=first, success_fraction=0.0)
    mixed = WindowSampler(lengths, [4, 5, 6, 7], 32, seed=0, first_success=first, success_fraction=0.6)
    only = WindowSampler(lengths, [4, 5, 6, 7], 32, seed=0, first_success=first, success_fraction=1.0)
    # windows ending after the first reward: history 4 has 5 of 19 (starts 14-18), history 5 has 221 of 269
    # (starts >= 49), history 6 (shorter than a window) its one, history 7 none of 69
    base = (5 + 221 + 1) / (19 + 269 + 1 + 69)
    assert abs(after_share(uniform.sample(20000)) - base) < 0.02
    assert abs(after_share(mixed.sample(20000)) - (0.4 * base + 0.6)) < 0.02
    picks = only.sample(20000)
    assert after_share(picks) == 1.0 and 7 not in {i for i, _ in picks}
    assert all(0 <= s and s + 32 <= lengths[i - 4] for i, s in picks if i != 6)  # still never across histories
    assert {s for i, s in picks if i == 6} == {0}
    assert min(s for i, s in picks if i == 5) == 49 and max(s for i, s in picks if i == 5) == 300 - 32


def test_corrupt_or_foreign_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(CorruptFileError):
        HistoryReader(bad)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(CorruptFileError, match="not an rlcli learning-histories"):
        HistoryReader(other)
    older = tmp_path / "older.h5"  # format 1 had no next_obs
    with h5py.File(older, "w") as f:
        f.attrs.update({"format": "rlcli-histories", "format_version": 1})
    with pytest.raises(CorruptFileError, match="format 1.*collect it again"):
        HistoryReader(older)
    format2 = tmp_path / "f2.h5"
    with h5py.File(format2, "w") as f:
        f.attrs.update({"format": "rlcli-histories", "format_version": 2})
    with pytest.raises(CorruptFileError, match="format 2.*rlcli collect --convert .*f2.h5 NEW.h5"):
        HistoryReader(format2)


def _tiny_cfg(seed=0, stride=2, extra=()):
    from rlcli.config.presets import resolve_config

    return resolve_config("ad", env="darkroom", preset="darkroom-ad", overrides=[*extra,
        f"run.seed={seed}", "collect.num_test_tasks=2", "collect.max_train_tasks=3", "collect.histories_per_task=2",
        "collect.num_validation_tasks=2", "collect.steps_per_agent=2000", "collect.streams_per_agent=2", "collect.flush_every=3",
        "collect.curve_every=2", "collect.checkpoint_every=4", "collect.chunk_size=64",
        f"collect.episode_stride={stride}"])


def _episodes(history: dict) -> list[dict]:
    ends = np.flatnonzero(history["done"])
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [{k: v[s:e + 1] for k, v in history.items()} for s, e in zip(starts, ends, strict=True)]


@pytest.fixture(scope="module")
def every_episode(tmp_path_factory):
    """A stride-1 collection: every episode of the tiny collection's agents."""
    from rlcli.ad.collect import collect

    path = tmp_path_factory.mktemp("every") / "every.h5"
    collect(_tiny_cfg(stride=1), path)
    return path


@pytest.mark.parametrize("skip", [0, 2])
def test_dense_until_success_stores_every_episode_up_to_the_first_success(tmp_path, every_episode, skip):
    from rlcli.ad.collect import collect, stored_episode_index

    dense = tmp_path / "dense.h5"
    collect(_tiny_cfg(stride=3, extra=["collect.dense_until_success=true",
                                       f"collect.skip_after_success={skip}"]), dense)
    with HistoryReader(every_episode) as a, HistoryReader(dense) as b:
        seen_success = seen_after = 0
        for i in range(len(a.histories)):
            all_eps, kept = _episodes(a.read(i)), _episodes(b.read(i))
            returns = np.array([e["reward"].sum() for e in kept])
            index = stored_episode_index(returns, 3, True, skip)
            first = int(np.argmax(returns > 0)) if (returns > 0).any() else len(returns)
            seen_success += first < len(returns)
            for k, e in zip(index, kept, strict=True):  # the same agents, so the very same episodes
                for name in FIELDS:
                    assert np.array_equal(all_eps[k][name], e[name])
            first_all = next((k for k, e in enumerate(all_eps) if e["reward"].sum() > 0), None)
            assert first_all == (first if first < len(returns) else None)
            if first + 1 < len(kept):  # the next stored episode comes skip episodes after the success
                seen_after += 1
                assert np.array_equal(kept[first + 1]["obs"], all_eps[first + 1 + skip]["obs"])
        assert seen_success > 0 and seen_after > 0


def test_interrupted_collection_resumes_to_the_same_file(tmp_path):
    from rlcli.ad.collect import CollectionInterrupted, collect, collection_run_dir
    from rlcli.storage.metrics import read_metrics

    ref = tmp_path / "ref.h5"
    res = collect(_tiny_cfg(), ref)
    # 3 train tasks x 2 agents, 2 validation + 2 test tasks x 1 agent; 2 streams each
    assert res.num_agents == 3 * 2 + 4 and res.num_histories == 20
    assert res.run_dir == tmp_path / "ref.collect" and not (res.run_dir / "checkpoints").exists()
    steps_per_update = res.num_agents * 10 * 10
    updates = 2000 // 100
    assert res.env_steps == updates * steps_per_update
    m = read_metrics(res.run_dir / "metrics.h5")  # the one training loop logged the source agents' training
    assert m["policy_loss"].shape[0] == updates and m["episode_return"].shape[0] > 0

    out = tmp_path / "out.h5"

    def ctrl_c(step):
        if step == 13 * steps_per_update:  # between checkpoints (every 4 updates) and flushes (every 3)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(CollectionInterrupted, match="rerun the same command"):
        collect(_tiny_cfg(), out, callbacks=[ctrl_c])
    assert (collection_run_dir(out) / "checkpoints" / "last.h5").exists()
    with HistoryReader(out) as r:
        assert not r.complete and 0 < r.histories[0].length < 13 * 10  # every other episode is stored
    res2 = collect(_tiny_cfg(), out)
    assert res2.resumed and res2.env_steps == (updates - 13) * steps_per_update
    assert not (collection_run_dir(out) / "checkpoints").exists()
    assert read_metrics(collection_run_dir(out) / "metrics.h5")["policy_loss"].shape[0] == updates
    with HistoryReader(ref) as a, HistoryReader(out) as b:
        assert b.complete and len(a.histories) == len(b.histories)
        for i in range(len(a.histories)):
            ha, hb = a.read(i), b.read(i)
            # subsampled histories hold whole episodes: each starts at time step 0 and counts up
            starts = np.concatenate([[0], np.flatnonzero(ha["done"][:-1]) + 1])
            assert (ha["time_step"][starts] == 0).all()
            assert (np.diff(ha["time_step"].astype(int))[~ha["done"][:-1]] == 1).all()
            # next_obs is the following obs within an episode, and the goal cell where the reward came
            within = ~ha["done"][:-1]
            np.testing.assert_array_equal(ha["next_obs"][:-1][within], ha["obs"][1:][within])
            goal = task_goal(a.histories[i].task)
            assert (ha["next_obs"][ha["reward"] == 1] == goal[0] * 9 + goal[1]).all()
            for k in FIELDS:
                np.testing.assert_array_equal(ha[k], hb[k])
        for x, y in zip(a.curves(), b.curves(), strict=True):
            np.testing.assert_array_equal(x, y)
    # a finished file is never overwritten
    from rlcli.config.fields import ConfigError

    with pytest.raises(ConfigError, match="complete"):
        collect(_tiny_cfg(), out)
    out.unlink()  # a new collection into the same --out replaces the old run folder beside it
    assert collect(_tiny_cfg(), out).env_steps == updates * steps_per_update


def test_split_is_seeded_and_stored(tmp_path, every_episode):
    from rlcli.ad.collect import split_tasks

    train, validation, test = split_tasks(0, 23, 8)
    assert (len(train), len(validation), len(test)) == (49, 8, 23)
    assert not set(train) & set(test) and not set(validation) & (set(train) | set(test))
    assert split_tasks(0, 23, 8) == (train, validation, test) and split_tasks(1, 23, 8)[2] != test
    assert split_tasks(0, 23, 0)[2] == test  # a seed's test tasks do not depend on the validation count
    from rlcli.config.fields import ConfigError
    from rlcli.config.presets import resolve_config

    with pytest.raises(ConfigError, match="leave no training task"):  # refused when the config is built
        resolve_config("ad", env="darkroom", preset="darkroom-ad",
                       overrides=["collect.num_test_tasks=40", "collect.num_validation_tasks=40"])
    with HistoryReader(every_episode) as r:  # the file stores the three splits, and histories of each
        assert (r.train_tasks, r.tasks("validation"), r.test_tasks) == split_tasks(0, 2, 2)
        assert {h.split for h in r.histories} == {"train", "validation", "test"}
        for h in r.histories:
            assert h.task in {"train": r.train_tasks, "validation": r.tasks("validation"), "test": r.test_tasks}[h.split]


def _write_format2(path, histories, specs, curves_returns):
    """A format-2 file as rlcli wrote them before format 3: a group of six datasets per history."""
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "rlcli-histories", "format_version": 2, "rlcli_version": "0",
                        "env": '{"size": 9}', "config": "x = 1\n", "complete": True, "num_agents": 2})
        f["tasks/train"], f["tasks/test"] = np.array([3]), np.array([7])
        for i, (h, (task, split, agent, stream)) in enumerate(zip(histories, specs, strict=True)):
            g = f.create_group(f"histories/h{i:05d}")
            g.attrs.update({"task": task, "split": split, "agent": agent, "stream": stream})
            for k, dtype in FIELDS.items():
                g[k] = h[k].astype(dtype)
        f["curves/steps"] = np.array([10, 20])
        f["curves/returns"] = curves_returns
        f["curves/tasks"], f["curves/splits"] = np.array([3, 7]), np.array([b"train", b"test"], dtype="S5")


def test_format2_converts_to_the_same_histories(tmp_path):
    rng = np.random.default_rng(1)
    histories = [{k: v[0] for k, v in _random_chunk(rng, 1, n).items()} for n in (40, 0, 75)]
    specs = [(3, "train", 0, 0), (3, "train", 0, 1), (7, "test", 1, 0)]
    old, new = tmp_path / "old.h5", tmp_path / "new.h5"
    _write_format2(old, histories, specs, np.array([[0.5, 1.0], [0.0, np.nan]], dtype=np.float32))
    assert convert_histories(old, new, chunk_size=16) == 3
    with HistoryReader(new) as r:
        assert r.complete and r.train_tasks == [3] and r.test_tasks == [7] and r.config_toml == "x = 1\n"
        assert [(h.task, h.split, h.agent, h.stream, h.length) for h in r.histories] == [
            (*s, len(h["obs"])) for s, h in zip(specs, histories, strict=True)]
        for i, h in enumerate(histories):
            got = r.read(i)
            for k, dtype in FIELDS.items():
                np.testing.assert_array_equal(got[k], h[k].astype(dtype))
        np.testing.assert_array_equal(r.windows([(2, 30)], 20)["reward"][0], histories[2]["reward"][30:50])
        assert r.curves()[1][0].tolist() == [0.5, 1.0]
    with pytest.raises(CorruptFileError, match="only format 2 converts"):
        convert_histories(new, tmp_path / "again.h5")


def _file_of(path, n_histories, length=12):
    rng = np.random.default_rng(n_histories)
    specs = [HistorySpec(i % 5, "validation" if i % 5 == 4 else "train", i, 0) for i in range(n_histories)]
    w = HistoryWriter(path, specs, {"size": 9}, [0, 1, 2, 3], [], list(range(n_histories)),
                      ["train"] * n_histories, other_tasks={"validation": [4]}, chunk_size=256)
    keep = rng.random((n_histories, length)) < 0.7  # ragged: each history keeps its own share
    w.append(keep=keep, **_random_chunk(rng, n_histories, length))
    w.append(**_random_chunk(rng, n_histories, 3))
    w.close()
    return keep.sum(1) + 3


def test_objects_do_not_grow_with_histories_and_splits_are_general(tmp_path):
    counts = []
    for n in (10, 300):
        lengths = _file_of(tmp_path / f"{n}.h5", n)
        with h5py.File(tmp_path / f"{n}.h5") as f:
            names = []
            f.visit(names.append)
            counts.append(len(names))
        with HistoryReader(tmp_path / f"{n}.h5") as r:
            assert [h.length for h in r.histories] == lengths.tolist()
            assert r.tasks("validation") == [4] and r.train_tasks == [0, 1, 2, 3] and r.test_tasks == []
            assert [h.index for h in r.select("validation")] == list(range(4, n, 5))
            picks = [(i, int(lengths[i]) - 5) for i in range(0, n, 7)]  # the last 5 cross into the 2nd append
            assert r.windows(picks, 5)["obs"].shape == (len(picks), 5)
    assert counts[0] == counts[1]


def test_resume_truncates_to_the_saved_lengths(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "h.h5"
    specs = [HistorySpec(0, "train", 0, s) for s in range(3)]
    w = HistoryWriter(path, specs, {}, [0], [], [0], ["train"], chunk_size=16)
    first = _random_chunk(rng, 3, 20)
    keep = rng.random((3, 20)) < 0.5
    w.append(keep=keep, **first)
    saved, points = w.lengths(), w.curve_points()
    w.append(**_random_chunk(rng, 3, 9))  # written after the resume state: dropped on reopen
    w.append_curve(5, np.array([1.0]))
    w.close()
    w = HistoryWriter.reopen(path, saved, points)
    assert w.lengths() == saved and w.curve_points() == 0
    second = _random_chunk(rng, 3, 6)
    w.append(**second)
    w.close()
    with HistoryReader(path) as r:
        for i in range(3):
            np.testing.assert_array_equal(r.read(i)["obs"], np.concatenate([first["obs"][i][keep[i]],
                                                                             second["obs"][i]]))


def test_cli_names_the_conversion_and_converts(tmp_path):
    import subprocess
    import sys

    rng = np.random.default_rng(3)
    old = tmp_path / "old.h5"
    _write_format2(old, [{k: v[0] for k, v in _random_chunk(rng, 1, 30).items()}], [(3, "train", 0, 0)],
                   np.zeros((2, 2), dtype=np.float32))

    def rlcli(*args):
        return subprocess.run([sys.executable, "-m", "rlcli.cli.main", *args], capture_output=True, text=True,
                              cwd=tmp_path)

    r = rlcli("distill", "darkroom", "--histories", str(old), "--steps", "1", "--runs-dir", str(tmp_path))
    assert r.returncode == 2 and f"rlcli collect --convert {old} NEW.h5" in r.stderr
    r = rlcli("collect", "--convert", str(old), "new.h5")
    assert r.returncode == 0 and "converted 1 histories" in r.stdout
    with HistoryReader(tmp_path / "new.h5") as reader:
        assert reader.histories[0].length == 30
    r = rlcli("collect", "--convert", str(old), "new.h5")
    assert r.returncode == 2 and "exists" in r.stderr
