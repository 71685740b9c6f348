"""metrics.h5: one dataset per metric, rows of (env step, value).

The writer keeps every row of the run in memory (16 bytes a row) and on ``flush()`` (every
``run.log_interval`` seconds, and before each checkpoint) rewrites the whole file atomically: a temporary
file is written and renamed over ``metrics.h5``. A reader (``rlcli report``, a notebook) always sees a
complete file, a kill at any moment leaves the previous version, and a full disk cannot damage it.
Opening a writer only reads: the rows logged after a resumed checkpoint are dropped in memory and the file
is first rewritten at the first flush, so a resume that fails later changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from rlcli.storage.errors import CorruptFileError, InvalidFileError
from rlcli.storage.files import open_h5_bytes, read_bytes, refuse_symlink, write_h5_atomic

MAX_METRICS_BYTES = 2 * 2**30  # a metrics file rlcli will read


class MetricsWriter:
    def __init__(self, path: Path, truncate_after_step: int | None = None, keep_existing: bool = True):
        """Append to ``path``; on resume, rows logged after ``truncate_after_step`` are dropped first
        (they belong to training that the resumed checkpoint does not contain). ``keep_existing=False``
        starts empty (a run restarted from scratch). Raises CorruptFileError before anything is written."""
        self.path = Path(path)
        refuse_symlink(self.path)
        self._rows: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._saved: dict[str, np.ndarray] = {}
        self._dirty = not keep_existing and self.path.exists()
        if keep_existing and self.path.exists():
            self._saved = read_metrics(self.path)
            if truncate_after_step is not None:
                for name, rows in self._saved.items():
                    keep = int(np.searchsorted(rows[:, 0], truncate_after_step, side="right"))
                    self._dirty |= keep < len(rows)
                    self._saved[name] = rows[:keep]

    def log(self, step: int, **values: float) -> None:
        for name, value in values.items():
            self._rows[name].append((float(step), float(value)))

    def flush(self) -> None:
        """Rewrite the file with every row so far (WriteFailedError when the disk is full: rows stay
        buffered and the previous file intact)."""
        if not self._rows and not self._dirty:
            return
        merged = dict(self._saved)
        for name, rows in self._rows.items():
            new = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
            merged[name] = np.concatenate([merged[name], new]) if name in merged else new

        def write(f) -> None:
            for name, data in merged.items():
                ds = f.create_dataset(name, data=data, maxshape=(None, 2), chunks=(1024, 2))
                ds.attrs["columns"] = "step,value"

        # no fsync: the rename alone keeps the file whole across a killed process, and a flush every few
        # seconds must not wait for the device
        write_h5_atomic(self.path, write, fsync=False)
        self._saved = merged
        self._rows.clear()
        self._dirty = False


def read_metrics(path: Path | str) -> dict[str, np.ndarray]:
    """All metrics of a run as ``{name: (N, 2) array of [step, value]}``; {} when there is no file."""
    path = Path(path)
    if not path.is_file():
        return {}
    import h5py

    try:
        with open_h5_bytes(path, read_bytes(path, MAX_METRICS_BYTES)) as f:
            out = {}
            for name in f:
                ds = f[name]
                if (not isinstance(ds, h5py.Dataset) or ds.shape is None or len(ds.shape) != 2
                        or ds.shape[1] != 2 or ds.dtype.kind not in "iuf"):
                    raise InvalidFileError(path, f"metric '{name}' is not an (N, 2) array of [step, value] rows "
                                                 f"(it is {getattr(ds, 'shape', 'a group')})")
                out[name] = np.asarray(ds[()], dtype=np.float64)
            return out
    except CorruptFileError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise CorruptFileError(path, str(e).splitlines()[0] if str(e) else "unreadable") from None
