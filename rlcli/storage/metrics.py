"""metrics.h5: one resizable dataset per metric, rows of (env step, value).

The writer buffers rows in memory and appends them on ``flush()`` (every ``run.log_interval`` seconds),
opening and closing the file each time so that other processes can read it while training runs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np

from rlcli.storage.errors import CorruptFileError


class MetricsWriter:
    def __init__(self, path: Path, truncate_after_step: int | None = None):
        """Append to ``path``; on resume, rows logged after ``truncate_after_step`` are dropped first
        (they belong to training that the resumed checkpoint does not contain)."""
        self.path = Path(path)
        self._rows: dict[str, list[tuple[float, float]]] = defaultdict(list)
        if self.path.exists():
            try:
                with h5py.File(self.path, "a") as f:
                    if truncate_after_step is not None:
                        for name in list(f.keys()):
                            ds = f[name]
                            keep = int(np.searchsorted(ds[:, 0], truncate_after_step, side="right"))
                            ds.resize((keep, 2))
            except OSError as e:
                raise CorruptFileError(self.path, str(e).splitlines()[0]) from None

    def log(self, step: int, **values: float) -> None:
        for name, value in values.items():
            self._rows[name].append((float(step), float(value)))

    def flush(self, wait: float = 10.0) -> None:
        """Append the buffered rows. A reader holding the file with HDF5's lock (h5py's default) makes the
        write wait, up to ``wait`` seconds, rather than fail the run."""
        if not self._rows:
            return
        deadline = time.monotonic() + wait
        while True:
            try:
                self._append()
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BlockingIOError(f"'{self.path}' stayed locked by another process for {wait:.0f} s") from None
                time.sleep(0.05)
        self._rows.clear()

    def _append(self) -> None:
        with h5py.File(self.path, "a") as f:
            for name, rows in self._rows.items():
                data = np.asarray(rows, dtype=np.float64)
                if name not in f:
                    ds = f.create_dataset(name, shape=(0, 2), maxshape=(None, 2), dtype=np.float64,
                                          chunks=(1024, 2))
                    ds.attrs["columns"] = "step,value"
                else:
                    ds = f[name]
                n = ds.shape[0]
                ds.resize((n + len(data), 2))
                ds[n:] = data


def read_metrics(path: Path | str) -> dict[str, np.ndarray]:
    """All metrics of a run as ``{name: (N, 2) array of [step, value]}``."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        # no HDF5 file lock: reading (rlcli report, a notebook) must never block the training run's writes
        with h5py.File(path, "r", locking=False) as f:
            return {name: f[name][()] for name in f.keys()}
    except (OSError, KeyError) as e:
        raise CorruptFileError(path, str(e).splitlines()[0] if str(e) else "unreadable") from None
