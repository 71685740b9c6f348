"""Storage errors, importable without torch or h5py (the CLI maps them to exit code 2)."""

from __future__ import annotations

from pathlib import Path


class CorruptFileError(OSError):
    """A checkpoint, metrics or history file that cannot be read (truncated, not HDF5, wrong format)."""

    def __init__(self, path: Path | str, why: str):
        super().__init__(f"'{path}' is unreadable or corrupt: {why}")
        self.path = Path(path)
