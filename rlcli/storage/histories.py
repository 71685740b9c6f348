"""Learning histories (Algorithm Distillation) in HDF5: written as a stream, read as windows.

Layout of a histories file::

    /                        attrs: format="rlcli-histories", format_version, rlcli_version,
                                    env (JSON: size, max_steps, terminate_on_goal, ...), config (the
                                    resolved TOML of the collection), complete (bool), num_agents
    /tasks/train, /tasks/validation, /tasks/test   the task split (int64 task ids)
    /histories/<hNNNNN>      one group per history (one env stream of one source agent);
                             attrs: task, split ("train" | "validation" | "test"), agent, stream
        obs        (T,) uint8    the agent's cell before the action
        action     (T,) uint8
        next_obs   (T,) uint8    the agent's cell after the action, before any reset (the goal cell when
                                 the action reached it)
        reward     (T,) float32
        done       (T,) bool     the episode ended with this transition (terminated or truncated)
        time_step  (T,) uint16   steps already taken in the episode when ``obs`` was seen
    /curves/steps    (K,) int64     env steps per agent at each learning-curve point
    /curves/returns  (A, K) float32 mean return of the episodes each agent finished since the last point
    /curves/tasks    (A,) int64, /curves/splits (A,) "train" | "validation" | "test"

History datasets are chunked (``chunk_size`` transitions) and gzip-compressed, resizable along T, so a
collection appends as it goes and a reader fetches a window by decompressing only the chunks it covers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rlcli.storage.errors import CorruptFileError

FORMAT = "rlcli-histories"
FORMAT_VERSION = 2  # 2: next_obs
FIELDS: dict[str, np.dtype] = {"obs": np.dtype(np.uint8), "action": np.dtype(np.uint8),
                               "next_obs": np.dtype(np.uint8),
                               "reward": np.dtype(np.float32), "done": np.dtype(bool),
                               "time_step": np.dtype(np.uint16)}


@dataclass(frozen=True)
class HistorySpec:
    """Which source agent and env stream a history records."""

    task: int
    split: str  # "train", "validation" or "test"
    agent: int
    stream: int


def history_name(index: int) -> str:
    return f"h{index:05d}"


class HistoryWriter:
    """Create (or reopen for resume) a histories file and append transitions of all histories at once."""

    def __init__(self, path: Path | str, specs: list[HistorySpec], env_params: dict[str, Any],
                 train_tasks: list[int], test_tasks: list[int], agent_tasks: list[int], agent_splits: list[str],
                 config_toml: str = "", chunk_size: int = 4096, other_tasks: dict[str, list[int]] | None = None):
        """``other_tasks``: task ids of further splits by label (say {"validation": [...]}), stored as
        ``/tasks/<label>`` next to train and test."""
        from rlcli import __version__

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = h5py.File(self.path, "w")
        f = self.file
        f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "rlcli_version": __version__,
                        "env": json.dumps(env_params), "config": config_toml, "complete": False,
                        "num_agents": len(agent_tasks)})
        f.create_dataset("tasks/train", data=np.asarray(train_tasks, dtype=np.int64))
        f.create_dataset("tasks/test", data=np.asarray(test_tasks, dtype=np.int64))
        for label, tasks in (other_tasks or {}).items():
            f.create_dataset(f"tasks/{label}", data=np.asarray(tasks, dtype=np.int64))
        for i, spec in enumerate(specs):
            g = f.create_group(f"histories/{history_name(i)}")
            g.attrs.update({"task": spec.task, "split": spec.split, "agent": spec.agent, "stream": spec.stream})
            for name, dtype in FIELDS.items():
                g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(chunk_size,),
                                 compression="gzip", compression_opts=4, shuffle=dtype.itemsize > 1)
        n_agents = len(agent_tasks)
        f.create_dataset("curves/steps", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,))
        f.create_dataset("curves/returns", shape=(n_agents, 0), maxshape=(n_agents, None), dtype=np.float32,
                         chunks=(n_agents, 64))
        f.create_dataset("curves/tasks", data=np.asarray(agent_tasks, dtype=np.int64))
        f.create_dataset("curves/splits", data=np.asarray(agent_splits, dtype="S10"))
        self.num_histories = len(specs)
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
            groups = self.file["histories"]
            if len(groups) != len(lengths):
                raise CorruptFileError(self.path, "its histories do not match the resume state")
            for i, n in enumerate(lengths):
                for name in FIELDS:
                    ds = groups[history_name(i)][name]
                    if ds.shape[0] < n:
                        raise CorruptFileError(self.path, f"history {i} is shorter than the resume state says")
                    ds.resize((n,))
            self.file["curves/steps"].resize((curve_points,))
            self.file["curves/returns"].resize(curve_points, axis=1)
        except OSError as e:
            raise CorruptFileError(self.path, str(e).splitlines()[0]) from None
        self.num_histories = len(lengths)
        return self

    def append(self, keep: np.ndarray | None = None, **arrays: np.ndarray) -> None:
        """Append transitions to every history: each of ``FIELDS`` as an (H, T) array; with ``keep``
        ((H, T) bool), history i gets only the transitions where ``keep[i]`` is true."""
        groups = self.file["histories"]
        for i in range(self.num_histories):
            g = groups[history_name(i)]
            rows = slice(None) if keep is None else keep[i]
            for name, dtype in FIELDS.items():
                data = arrays[name][i][rows].astype(dtype, copy=False)
                if len(data) == 0:
                    continue
                ds = g[name]
                n = ds.shape[0]
                ds.resize((n + len(data),))
                ds[n:] = data

    def append_curve(self, steps: int, returns: np.ndarray) -> None:
        """One learning-curve point: ``returns`` (A,) of every agent at ``steps`` env steps per agent."""
        s, r = self.file["curves/steps"], self.file["curves/returns"]
        k = s.shape[0]
        s.resize((k + 1,))
        s[k] = steps
        r.resize(k + 1, axis=1)
        r[:, k] = returns

    def lengths(self) -> list[int]:
        groups = self.file["histories"]
        return [groups[history_name(i)]["obs"].shape[0] for i in range(self.num_histories)]

    def curve_points(self) -> int:
        return int(self.file["curves/steps"].shape[0])

    def flush(self) -> None:
        self.file.flush()

    def mark_complete(self) -> None:
        self.file.attrs["complete"] = True
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _check_format(f: h5py.File, path: Path) -> None:
    if f.attrs.get("format") != FORMAT:
        raise CorruptFileError(path, "it is not an rlcli learning-histories file (write one with `rlcli collect`)")
    if int(f.attrs.get("format_version", 0)) != FORMAT_VERSION:
        raise CorruptFileError(path, f"it is a histories file of format {f.attrs.get('format_version')}, this rlcli "
                                     f"reads format {FORMAT_VERSION} (collect it again)")


@dataclass(frozen=True)
class HistoryInfo:
    index: int
    task: int
    split: str
    agent: int
    length: int


class HistoryReader:
    """Read-only access to a histories file; windows are read without loading whole histories."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"histories file '{self.path}' does not exist (write one with `rlcli collect`)")
        try:
            self.file = h5py.File(self.path, "r", rdcc_nbytes=16 * 2**20)
            _check_format(self.file, self.path)
            f = self.file
            self.env_params: dict[str, Any] = json.loads(f.attrs["env"])
            self.config_toml: str = str(f.attrs.get("config", ""))
            self.complete = bool(f.attrs.get("complete", False))
            self.train_tasks = f["tasks/train"][()].tolist()
            self.test_tasks = f["tasks/test"][()].tolist()
            groups = f["histories"]
            self._groups = [groups[history_name(i)] for i in range(len(groups))]
            self._datasets = [{name: g[name] for name in FIELDS} for g in self._groups]  # cached handles
            self.histories = [HistoryInfo(i, int(g.attrs["task"]), str(g.attrs["split"]), int(g.attrs["agent"]),
                                          int(g["obs"].shape[0])) for i, g in enumerate(self._groups)]
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
        """Task ids of ``split`` ("train", "validation", "test"), sorted (none for a split the file lacks:
        files collected before the validation split have no validation tasks)."""
        key = f"tasks/{split}"
        return sorted(self.file[key][()].tolist()) if key in self.file else []

    def select(self, split: str) -> list[HistoryInfo]:
        """Histories of ``split`` ("train", "validation", "test" or "all")."""
        return [h for h in self.histories if split == "all" or h.split == split]

    def window(self, index: int, start: int, length: int) -> dict[str, np.ndarray]:
        """Transitions [start, start + length) of history ``index``: each field as a (length,) array."""
        return {name: ds[start:start + length] for name, ds in self._datasets[index].items()}

    def windows(self, picks: list[tuple[int, int]], length: int) -> dict[str, np.ndarray]:
        """Stacked windows ``[(history index, start), ...]`` -> each field as an (N, length) array."""
        out = {name: np.empty((len(picks), length), dtype=dtype) for name, dtype in FIELDS.items()}
        for row, (index, start) in enumerate(picks):
            if start < 0 or start + length > self.histories[index].length:
                raise IndexError(f"window [{start}, {start + length}) is outside history {index}")
            for name, ds in self._datasets[index].items():
                ds.read_direct(out[name], np.s_[start:start + length], np.s_[row, :])
        return out

    def first_reward_end(self, index: int, stop: int) -> int:
        """1 + the position of history ``index``'s first rewarded transition before ``stop`` (``stop`` if none):
        where the part of the history after its first success begins. Reads the reward column only."""
        rewarded = np.flatnonzero(self._datasets[index]["reward"][:stop] > 0)
        return int(rewarded[0]) + 1 if len(rewarded) else stop

    def read(self, index: int) -> dict[str, np.ndarray]:
        """A whole history (for baselines and plots; training reads windows)."""
        return {name: ds[()] for name, ds in self._datasets[index].items()}

    def curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(steps (K,), returns (A, K), agent tasks (A,), agent splits (A,) as str)."""
        f = self.file
        splits = np.asarray([s.decode() for s in f["curves/splits"][()]])
        return f["curves/steps"][()], f["curves/returns"][()], f["curves/tasks"][()], splits


def episode_returns(reward: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Returns of the complete episodes of one history, in order: (E,)."""
    ends = np.flatnonzero(done)
    if len(ends) == 0:
        return np.zeros(0)
    csum = np.concatenate([[0.0], np.cumsum(reward, dtype=np.float64)])
    starts = np.concatenate([[0], ends[:-1] + 1])
    return csum[ends + 1] - csum[starts]
