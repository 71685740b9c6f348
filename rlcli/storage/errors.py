"""Storage errors, importable without torch or h5py.

The CLI maps :class:`CorruptFileError` (and its subclasses) to exit code 2, bad input, and
:class:`RunStoppedError` (and its subclasses) to exit code 1, a run that failed while it worked.
"""

from __future__ import annotations

import errno
from pathlib import Path


class CorruptFileError(OSError):
    """A checkpoint, metrics or history file that cannot be read (truncated, not HDF5, wrong format)."""

    def __init__(self, path: Path | str, why: str):
        super().__init__(f"'{path}' is unreadable or corrupt: {why}")
        self.path = Path(path)


class InvalidFileError(CorruptFileError):
    """A readable file whose content rlcli refuses: a wrong shape or dtype, NaN weights, external storage..."""

    def __init__(self, path: Path | str, why: str):
        OSError.__init__(self, f"'{path}' is not a valid rlcli file: {why}")
        self.path = Path(path)


class FileAccessError(CorruptFileError):
    """A file rlcli may not read (permission denied): said as such, not as corruption."""

    def __init__(self, path: Path | str, why: str):
        OSError.__init__(self, f"cannot read '{path}': {why}")
        self.path = Path(path)


class RunStoppedError(RuntimeError):
    """The run stopped while it worked (diverged, disk full): exit code 1, earlier checkpoints are intact."""


class NonFiniteError(RunStoppedError):
    """A loss, gradient or parameter became NaN or Inf; nothing non-finite was saved."""


class WriteFailedError(RunStoppedError):
    """Writing a file of the run failed (disk full, permission denied); the previous version is intact."""

    def __init__(self, path: Path | str, error: OSError):
        super().__init__(f"{describe_os_error(error)} writing {path}")
        self.path = Path(path)
        self.errno = error.errno


def describe_os_error(error: OSError) -> str:
    """'disk full', 'permission denied', ... for an OSError raised by a write."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.EROFS:
        return "read-only file system"
    if error.errno == errno.EFBIG:
        return "file size limit reached"
    return (error.strerror or type(error).__name__).lower()
