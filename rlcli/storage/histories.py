"""Learning histories (Algorithm Distillation) in HDF5: written as a stream, read as windows.

Format 3 keeps each field of all histories in one dataset (ragged arrays), so opening a file and sampling
windows touches a fixed number of HDF5 objects whatever the number of histories (format 2 had a group and six
datasets per history, and a reader holding a handle on each grew past a gigabyte at 2,500 histories).

Layout of a histories file::

    /                       attrs: format="rlcli-histories", format_version=3, rlcli_version,
                                   env (JSON: size, max_steps, terminate_on_goal, ...), config (the resolved
                                   TOML of the collection), complete (bool), num_agents, num_histories
    /transitions/<field>    (N,) every stored transition of every history, in the order they were appended;
                            one dataset per field of ``FIELDS``, chunked, compressed, resizable
    /segments/history       (S,) int64  the history a segment belongs to
    /segments/position      (S,) int64  its first transition's position within that history
    /segments/row           (S,) int64  its first transition's row in /transitions
    /segments/length        (S,) int64  its number of transitions
    /histories/task, agent, stream  (H,) int64;  /histories/split  (H,) bytes ("train", "validation", "test")
    /tasks/id (K,) int64, /tasks/split (K,) bytes   the task split: one label per task
    /curves/steps    (K,) int64     env steps per agent at each learning-curve point
    /curves/returns  (A, K) float32 mean return of the episodes each agent finished since the last point
    /curves/tasks    (A,) int64, /curves/splits (A,) bytes

The segments are the offsets index of the ragged arrays: history h is the concatenation, by position, of
its segments' rows. A collection appends a block of all histories' new transitions at once (one segment per
history and append), so writing stays streaming; a file written one history at a time (a conversion) has
exactly one segment per history. Every dataset carries ``meaning`` and ``unit`` attributes.

A sharded collection's index (:mod:`rlcli.ad.shards`) has the same layout: its ``/transitions/<field>`` are
virtual datasets over the shard files named in its ``shards`` attribute (JSON list, relative to the index's
folder), its tables the shards' concatenated. HDF5 reads a missing source file as fill values, so the
reader checks that every shard file is there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import h5py
import numpy as np

from rlcli.storage.errors import CorruptFileError

FORMAT = "rlcli-histories"
FORMAT_VERSION = 3  # 2: next_obs; 3: one dataset per field (ragged arrays + segment index)
FIELDS: dict[str, np.dtype] = {"obs": np.dtype(np.uint8), "action": np.dtype(np.uint8),
                               "next_obs": np.dtype(np.uint8),
                               "reward": np.dtype(np.float32), "done": np.dtype(bool),
                               "time_step": np.dtype(np.uint16)}
FIELD_DOCS: dict[str, tuple[str, str]] = {
    "obs": ("the agent's cell (row * size + col) before the action", "cell index"),
    "action": ("the action taken", "action index"),
    "next_obs": ("the agent's cell after the action, before any reset (the goal cell when the action "
                 "reached it)", "cell index"),
    "reward": ("the reward of the transition", "reward"),
    "done": ("the episode ended with this transition (terminated or truncated)", "bool"),
    "time_step": ("steps already taken in the episode when obs was seen", "env steps"),
}
SPLIT_DTYPE = "S16"
SEGMENT_FIELDS = ("history", "position", "row", "length")
_SEGMENT_DOCS = {"history": ("the history this segment of transitions belongs to", "history index"),
                 "position": ("position of the segment's first transition within its history", "transitions"),
                 "row": ("row of the segment's first transition in /transitions/*", "rows"),
                 "length": ("transitions in the segment", "transitions")}


@dataclass(frozen=True)
class HistorySpec:
    """Which source agent and env stream a history records."""

    task: int
    split: str  # "train", "validation" or "test"
    agent: int
    stream: int


def _doc(ds: h5py.Dataset, meaning: str, unit: str) -> h5py.Dataset:
    ds.attrs.update({"meaning": meaning, "unit": unit})
    return ds


def _labels(values: Sequence[str]) -> np.ndarray:
    return np.asarray([str(v).encode() for v in values], dtype=SPLIT_DTYPE)


class HistoryWriter:
    """Create (or reopen for resume) a histories file and append transitions of all histories at once."""

    def __init__(self, path: Path | str, specs: list[HistorySpec], env_params: dict[str, Any],
                 train_tasks: list[int], test_tasks: list[int], agent_tasks: list[int], agent_splits: list[str],
                 config_toml: str = "", chunk_size: int = 4096, other_tasks: dict[str, list[int]] | None = None):
        """``other_tasks``: task ids of further splits by label (say {"validation": [...]}), stored in the
        task split table next to train and test."""
        from rlcli import __version__

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = h5py.File(self.path, "w")
        f = self.file
        f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "rlcli_version": __version__,
                        "env": json.dumps(env_params), "config": config_toml, "complete": False,
                        "num_agents": len(agent_tasks), "num_histories": len(specs)})
        task_split = {**{t: "train" for t in train_tasks}, **{t: "test" for t in test_tasks}}
        for label, tasks in (other_tasks or {}).items():
            task_split.update({t: label for t in tasks})
        ids = sorted(task_split)
        _doc(f.create_dataset("tasks/id", data=np.asarray(ids, dtype=np.int64)), "task id", "task index")
        _doc(f.create_dataset("tasks/split", data=_labels([task_split[t] for t in ids])),
             "the split the task belongs to (train, validation, test)", "label")
        for name, dtype in FIELDS.items():
            _doc(f.create_dataset(f"transitions/{name}", shape=(0,), maxshape=(None,), dtype=dtype,
                                  chunks=(chunk_size,), compression="gzip", compression_opts=4,
                                  shuffle=dtype.itemsize > 1), *FIELD_DOCS[name])
        for name in SEGMENT_FIELDS:
            _doc(f.create_dataset(f"segments/{name}", shape=(0,), maxshape=(None,), dtype=np.int64,
                                  chunks=(4096,), compression="gzip", compression_opts=1), *_SEGMENT_DOCS[name])
        for name, doc in (("task", ("the task the history's agent learns", "task id")),
                          ("agent", ("the source agent", "agent index")),
                          ("stream", ("the agent's env stream the history records", "env index"))):
            _doc(f.create_dataset(f"histories/{name}", data=np.asarray([getattr(s, name) for s in specs],
                                                                       dtype=np.int64)), *doc)
        _doc(f.create_dataset("histories/split", data=_labels([s.split for s in specs])),
             "the split of the history's task", "label")
        n_agents = len(agent_tasks)
        _doc(f.create_dataset("curves/steps", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,)),
             "env steps per agent at each learning-curve point", "env steps")
        _doc(f.create_dataset("curves/returns", shape=(n_agents, 0), maxshape=(n_agents, None),
                              dtype=np.float32, chunks=(max(1, n_agents), 64)),
             "mean return of the episodes each agent finished since the previous point (NaN: none)", "return")
        _doc(f.create_dataset("curves/tasks", data=np.asarray(agent_tasks, dtype=np.int64)),
             "each agent's task", "task id")
        _doc(f.create_dataset("curves/splits", data=_labels(agent_splits)), "each agent's split", "label")
        self.num_histories = len(specs)
        self._lengths = np.zeros(len(specs), dtype=np.int64)
        self._rows = 0
        f.flush()

    @classmethod
    def reopen(cls, path: Path | str, lengths: list[int], curve_points: int) -> HistoryWriter:
        """Reopen an interrupted collection, dropping whatever was appended after the resume state was saved:
        history i keeps its first ``lengths[i]`` transitions and the curves their first ``curve_points``."""
        self = cls.__new__(cls)
        self.path = Path(path)
        try:
            self.file = h5py.File(self.path, "a")
            _check_format(self.file, self.path)
            f = self.file
            if int(f.attrs["num_histories"]) != len(lengths):
                raise CorruptFileError(self.path, "its histories do not match the resume state")
            keep = np.asarray(lengths, dtype=np.int64)
            seg = {name: f[f"segments/{name}"][()] for name in SEGMENT_FIELDS}
            have = np.bincount(seg["history"], weights=seg["length"], minlength=len(keep))
            short = np.flatnonzero(have < keep)
            if len(short):
                raise CorruptFileError(self.path, f"history {short[0]} is shorter than the resume state says")
            # segments past the saved length go; one that straddles it is cut to end there
            cut = np.clip(keep[seg["history"]] - seg["position"], 0, seg["length"])
            kept = cut > 0
            seg = {name: v[kept] for name, v in seg.items()}
            seg["length"] = cut[kept]
            for name in SEGMENT_FIELDS:
                f[f"segments/{name}"].resize((len(seg["row"]),))
                f[f"segments/{name}"][:] = seg[name]
            self._rows = int((seg["row"] + seg["length"]).max()) if len(seg["row"]) else 0
            for name in FIELDS:
                f[f"transitions/{name}"].resize((self._rows,))
            f["curves/steps"].resize((curve_points,))
            f["curves/returns"].resize(curve_points, axis=1)
        except OSError as e:
            raise CorruptFileError(self.path, str(e).splitlines()[0]) from None
        except KeyError as e:
            raise CorruptFileError(self.path, f"missing {e}") from None
        self.num_histories = len(lengths)
        self._lengths = keep
        return self

    def _append_rows(self, histories: np.ndarray, counts: np.ndarray, rows: dict[str, np.ndarray]) -> None:
        """Append ``rows`` (each field (sum(counts),)): the first counts[0] of them to histories[0], ..."""
        total = int(counts.sum())
        if total == 0:
            return
        f = self.file
        for name, dtype in FIELDS.items():
            ds = f[f"transitions/{name}"]
            ds.resize((self._rows + total,))
            ds[self._rows:] = rows[name].astype(dtype, copy=False)
        nonzero = counts > 0
        histories, counts = histories[nonzero], counts[nonzero]
        new = {"history": histories, "position": self._lengths[histories],
               "row": self._rows + np.concatenate([[0], np.cumsum(counts)[:-1]]), "length": counts}
        for name in SEGMENT_FIELDS:
            ds = f[f"segments/{name}"]
            s = ds.shape[0]
            ds.resize((s + len(counts),))
            ds[s:] = new[name]
        self._lengths[histories] += counts
        self._rows += total

    def append(self, keep: np.ndarray | None = None, **arrays: np.ndarray) -> None:
        """Append transitions to every history: each of ``FIELDS`` as an (H, T) array; with ``keep``
        ((H, T) bool), history i gets only the transitions where ``keep[i]`` is true."""
        h, t = np.shape(arrays["obs"])
        if keep is None:
            counts = np.full(h, t, dtype=np.int64)
            rows = {name: np.asarray(arrays[name]).reshape(-1) for name in FIELDS}
        else:
            keep = np.asarray(keep, dtype=bool)
            counts = keep.sum(1).astype(np.int64)
            rows = {name: np.asarray(arrays[name])[keep] for name in FIELDS}  # row-major: history by history
        self._append_rows(np.arange(h), counts, rows)

    def append_history(self, index: int, **arrays: np.ndarray) -> None:
        """Append transitions to history ``index`` alone: each of ``FIELDS`` as a (T,) array."""
        n = len(arrays["obs"])
        self._append_rows(np.asarray([index]), np.asarray([n], dtype=np.int64),
                          {name: np.asarray(arrays[name]) for name in FIELDS})

    def append_curve(self, steps: int, returns: np.ndarray) -> None:
        """One learning-curve point: ``returns`` (A,) of every agent at ``steps`` env steps per agent."""
        s, r = self.file["curves/steps"], self.file["curves/returns"]
        k = s.shape[0]
        s.resize((k + 1,))
        s[k] = steps
        r.resize(k + 1, axis=1)
        r[:, k] = returns

    def lengths(self) -> list[int]:
        return self._lengths.tolist()

    def curve_points(self) -> int:
        return int(self.file["curves/steps"].shape[0])

    def flush(self) -> None:
        self.file.flush()

    def mark_complete(self) -> None:
        self.file.attrs["complete"] = True
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def convert_command(old: Path | str, new: Path | str) -> str:
    return f"rlcli collect --convert {old} {new}"


def _check_format(f: h5py.File, path: Path) -> None:
    if f.attrs.get("format") != FORMAT:
        raise CorruptFileError(path, "it is not an rlcli learning-histories file (write one with `rlcli collect`)")
    version = int(f.attrs.get("format_version", 0))
    if version == 2:
        raise CorruptFileError(path, f"it is a histories file of format 2, this rlcli reads format "
                                     f"{FORMAT_VERSION}; convert it with `{convert_command(path, 'NEW.h5')}`")
    if version != FORMAT_VERSION:
        raise CorruptFileError(path, f"it is a histories file of format {f.attrs.get('format_version')}, this rlcli "
                                     f"reads format {FORMAT_VERSION} (collect it again)")


@dataclass(frozen=True)
class HistoryInfo:
    index: int
    task: int
    split: str
    agent: int
    length: int
    stream: int = 0


class HistoryTable(Sequence[HistoryInfo]):
    """The histories of a file as a sequence of :class:`HistoryInfo`, built on access from a few arrays (so
    a file of 100k histories holds no 100k Python objects)."""

    def __init__(self, task: np.ndarray, split_code: np.ndarray, split_names: list[str], agent: np.ndarray,
                 stream: np.ndarray, length: np.ndarray):
        self.task, self.split_code, self.split_names = task, split_code, split_names
        self.agent, self.stream, self.length = agent, stream, length

    def __len__(self) -> int:
        return len(self.task)

    @overload
    def __getitem__(self, i: int) -> HistoryInfo: ...

    @overload
    def __getitem__(self, i: slice) -> list[HistoryInfo]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return HistoryInfo(i, int(self.task[i]), self.split_names[self.split_code[i]], int(self.agent[i]),
                           int(self.length[i]), int(self.stream[i]))

    def __iter__(self) -> Iterator[HistoryInfo]:
        return (self[i] for i in range(len(self)))

    def indices(self, split: str) -> np.ndarray:
        """Indices of the histories of ``split`` ("all": every one)."""
        if split == "all":
            return np.arange(len(self))
        if split not in self.split_names:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.split_code == self.split_names.index(split))


class HistoryReader:
    """Read-only access to a histories file; windows are read without loading whole histories.

    Opening reads the small tables (histories, segments, tasks) into arrays and keeps one handle per field
    dataset; the memory it holds does not grow with the transitions stored, and the HDF5 objects it opens
    do not grow with the number of histories.
    """

    def __init__(self, path: Path | str, cache_bytes: int = 2**20):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"histories file '{self.path}' does not exist (write one with `rlcli collect`)")
        try:
            # the chunk cache is per dataset: cache_bytes for each of the six fields. Windows land at random,
            # so a bigger cache buys little and costs resident memory
            self.file = h5py.File(self.path, "r", rdcc_nbytes=cache_bytes, rdcc_nslots=10007)
            _check_format(self.file, self.path)
            f = self.file
            self.shards = [self.path.parent / name for name in json.loads(f.attrs.get("shards", "[]"))]
            missing = [p for p in self.shards if not p.is_file()]
            if missing:
                raise CorruptFileError(self.path, f"its shard file '{missing[0]}' is missing (an index of a sharded "
                                                  f"collection reads its shard files beside it)")
            self.env_params: dict[str, Any] = json.loads(f.attrs["env"])
            self.config_toml: str = str(f.attrs.get("config", ""))
            self.complete = bool(f.attrs.get("complete", False))
            ids = f["tasks/id"][()]
            labels = [s.decode() for s in f["tasks/split"][()]]
            self.task_split: dict[int, str] = dict(zip(ids.tolist(), labels, strict=True))
            split_names, split_code = np.unique(f["histories/split"][()], return_inverse=True)
            n = int(f.attrs["num_histories"])
            seg = {name: f[f"segments/{name}"][()] for name in SEGMENT_FIELDS}
            lengths = np.bincount(seg["history"], weights=seg["length"], minlength=n).astype(np.int64)
            order = np.lexsort((seg["position"], seg["history"]))
            # the index is the only memory that grows with the histories: the narrowest types that hold it
            small = np.int32 if lengths.max(initial=0) < 2**31 else np.int64
            self._seg_first = np.searchsorted(seg["history"][order], np.arange(n + 1))
            self._seg_position = seg["position"][order].astype(small)
            self._seg_length = seg["length"][order].astype(small)
            self._seg_row = seg["row"][order]
            del seg, order
            self.histories = HistoryTable(f["histories/task"][()].astype(np.int32), split_code.astype(np.int8),
                                          [s.decode() for s in split_names],
                                          f["histories/agent"][()].astype(np.int32),
                                          f["histories/stream"][()].astype(np.int32), lengths)
            self._fields = {name: f[f"transitions/{name}"] for name in FIELDS}
        except CorruptFileError:
            raise
        except (OSError, KeyError, ValueError) as e:
            raise CorruptFileError(self.path, str(e).splitlines()[0] if str(e) else type(e).__name__) from None

    def __enter__(self) -> HistoryReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    def tasks(self, split: str) -> list[int]:
        """Task ids of ``split`` ("train", "validation", "test"), sorted."""
        return sorted(t for t, s in self.task_split.items() if s == split)

    @property
    def train_tasks(self) -> list[int]:
        return self.tasks("train")

    @property
    def test_tasks(self) -> list[int]:
        return self.tasks("test")

    def select(self, split: str) -> list[HistoryInfo]:
        """Histories of ``split`` ("train", "validation", "test" or "all")."""
        return [self.histories[int(i)] for i in self.histories.indices(split)]

    def _pieces(self, index: int, start: int, length: int) -> list[tuple[int, int, int]]:
        """(row in /transitions, offset in the window, count) covering transitions [start, start + length)."""
        a, b = self._seg_first[index], self._seg_first[index + 1]
        if b - a == 1:  # one segment (a converted file, or short histories): a plain offset
            return [(int(self._seg_row[a]) + start, 0, length)]
        pieces, done = [], 0
        k = a + int(np.searchsorted(self._seg_position[a:b], start, side="right")) - 1
        while done < length:
            pos = start + done
            n = min(length - done, int(self._seg_position[k] + self._seg_length[k]) - pos)
            pieces.append((int(self._seg_row[k]) + pos - int(self._seg_position[k]), done, n))
            done += n
            k += 1
        return pieces

    def _check(self, index: int, start: int, length: int) -> None:
        if start < 0 or start + length > self.histories.length[index]:
            raise IndexError(f"window [{start}, {start + length}) is outside history {index}")

    def window(self, index: int, start: int, length: int) -> dict[str, np.ndarray]:
        """Transitions [start, start + length) of history ``index``: each field as a (length,) array."""
        length = max(0, min(length, int(self.histories.length[index]) - start))
        out = self.windows([(index, start)], length)
        return {name: v[0] for name, v in out.items()}

    def windows(self, picks: list[tuple[int, int]], length: int) -> dict[str, np.ndarray]:
        """Stacked windows ``[(history index, start), ...]`` -> each field as an (N, length) array."""
        out = {name: np.empty((len(picks), length), dtype=dtype) for name, dtype in FIELDS.items()}
        if length == 0:
            return out
        for row, (index, start) in enumerate(picks):
            self._check(index, start, length)
            for source, offset, n in self._pieces(index, start, length):
                for name, ds in self._fields.items():
                    ds.read_direct(out[name], np.s_[source:source + n], np.s_[row, offset:offset + n])
        return out

    def _column(self, index: int, name: str, stop: int) -> np.ndarray:
        out = np.empty(stop, dtype=FIELDS[name])
        if stop:
            for source, offset, n in self._pieces(index, 0, stop):
                self._fields[name].read_direct(out, np.s_[source:source + n], np.s_[offset:offset + n])
        return out

    def first_reward_end(self, index: int, stop: int) -> int:
        """1 + the position of history ``index``'s first rewarded transition before ``stop`` (``stop`` if none):
        where the part of the history after its first success begins. Reads the reward column only."""
        rewarded = np.flatnonzero(self._column(index, "reward", stop) > 0)
        return int(rewarded[0]) + 1 if len(rewarded) else stop

    def read(self, index: int) -> dict[str, np.ndarray]:
        """A whole history (for baselines and plots; training reads windows)."""
        n = int(self.histories.length[index])
        return {name: self._column(index, name, n) for name in FIELDS}

    def curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(steps (K,), returns (A, K), agent tasks (A,), agent splits (A,) as str)."""
        f = self.file
        splits = np.asarray([s.decode() for s in f["curves/splits"][()]])
        return f["curves/steps"][()], f["curves/returns"][()], f["curves/tasks"][()], splits


def convert_histories(old: Path | str, new: Path | str, chunk_size: int = 4096) -> int:
    """Rewrite a format-2 histories file ``old`` as format 3 at ``new`` (one history at a time, so memory holds
    one history); -> the number of histories. Raises CorruptFileError when ``old`` is no format-2 file."""
    old, new = Path(old), Path(new)
    if not old.is_file():
        raise FileNotFoundError(f"histories file '{old}' does not exist")
    if new.exists():
        raise FileExistsError(f"'{new}' exists; choose another output file")
    try:
        src = h5py.File(old, "r")
    except OSError as e:
        raise CorruptFileError(old, str(e).splitlines()[0]) from None
    with src:
        if src.attrs.get("format") != FORMAT or int(src.attrs.get("format_version", 0)) != 2:
            raise CorruptFileError(old, f"it is no format-2 rlcli histories file (format "
                                        f"{src.attrs.get('format_version')}); only format 2 converts")
        groups = src["histories"]
        names = sorted(groups)
        specs = [HistorySpec(int(groups[n].attrs["task"]), str(groups[n].attrs["split"]),
                             int(groups[n].attrs["agent"]), int(groups[n].attrs["stream"])) for n in names]
        splits = [s.decode() for s in src["curves/splits"][()]]
        writer = HistoryWriter(new, specs, json.loads(src.attrs["env"]), src["tasks/train"][()].tolist(),
                               src["tasks/test"][()].tolist(), src["curves/tasks"][()].tolist(), splits,
                               str(src.attrs.get("config", "")), chunk_size)
        try:
            for i, name in enumerate(names):
                writer.append_history(i, **{k: groups[name][k][()] for k in FIELDS})
            steps, returns = src["curves/steps"][()], src["curves/returns"][()]
            for k in range(len(steps)):
                writer.append_curve(int(steps[k]), returns[:, k])
            if bool(src.attrs.get("complete", False)):
                writer.mark_complete()
        finally:
            writer.close()
    return len(specs)


def episode_returns(reward: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Returns of the complete episodes of one history, in order: (E,)."""
    ends = np.flatnonzero(done)
    if len(ends) == 0:
        return np.zeros(0)
    csum = np.concatenate([[0.0], np.cumsum(reward, dtype=np.float64)])
    starts = np.concatenate([[0], ends[:-1] + 1])
    return csum[ends + 1] - csum[starts]
