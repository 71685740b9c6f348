"""shift.h5: a policy's performance-vs-shift curve and its GRS, stored in the run folder.

Layout::

    /            attrs: format="rlcli-shift", grs, checkpoint, step, deterministic
    /levels      (L,) float64 variation levels
    /returns     (L, N) float64 episode returns, N episodes per level

Written atomically (temporary file + rename), so a reader never sees half a curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from rlcli.storage.errors import CorruptFileError

SHIFT_FILE = "shift.h5"
FORMAT = "rlcli-shift"
MAX_SHIFT_BYTES = 256 * 2**20


@dataclass
class ShiftResult:
    """Evaluation of one policy at each shift level (computed by :func:`rlcli.evaluation.grs.evaluate_shift`)."""

    levels: np.ndarray  # (L,) variation levels
    returns: np.ndarray  # (L, N) episode returns, N episodes per level
    grs: float  # the Generalization Robustness Score of the curve (rlcli.evaluation.grs.grs_score)
    checkpoint: str  # the checkpoint evaluated
    step: int  # env steps it was trained for
    deterministic: bool = True
    path: Path | None = None  # where the curve was stored

    @property
    def mean_returns(self) -> np.ndarray:
        return self.returns.mean(axis=1)

    @property
    def std_returns(self) -> np.ndarray:
        return self.returns.std(axis=1)


def write_shift(path: Path, result: ShiftResult) -> None:
    """Store ``result`` at ``path`` atomically."""
    from rlcli.storage.checkpoint import atomic_write_h5

    def write(f: h5py.File) -> None:
        f.attrs["format"] = FORMAT
        f.attrs["grs"] = float(result.grs)
        f.attrs["checkpoint"] = str(result.checkpoint)
        f.attrs["step"] = int(result.step)
        f.attrs["deterministic"] = bool(result.deterministic)
        f.create_dataset("levels", data=np.asarray(result.levels, dtype=np.float64))
        f.create_dataset("returns", data=np.asarray(result.returns, dtype=np.float64))

    atomic_write_h5(Path(path), write)


def read_shift(path: Path | str) -> ShiftResult | None:
    """The curve stored at ``path``; None when there is none."""
    from rlcli.storage.files import open_h5_bytes, read_bytes

    path = Path(path)
    if not path.is_file():
        return None
    try:
        with open_h5_bytes(path, read_bytes(path, MAX_SHIFT_BYTES)) as f:
            if f.attrs.get("format") != FORMAT:
                raise CorruptFileError(path, "it is not an rlcli shift curve")
            return ShiftResult(f["levels"][()], f["returns"][()], float(f.attrs["grs"]),
                               str(f.attrs["checkpoint"]), int(f.attrs["step"]), bool(f.attrs["deterministic"]),
                               path)
    except CorruptFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise CorruptFileError(path, str(e).splitlines()[0] if str(e) else type(e).__name__) from None
