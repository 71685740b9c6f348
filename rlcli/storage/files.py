"""Safe file primitives every writer and reader of a run folder goes through.

- Writes are atomic: the bytes go to a temporary file with a unique name, created exclusively
  (``O_CREAT | O_EXCL | O_NOFOLLOW``) beside the target, then renamed over it. A crash, a full disk or a
  denied permission leaves the previous version intact and no temporary file behind, and the error is one
  :class:`WriteFailedError` ("disk full writing RUN/checkpoints/last.h5").
- A symlink at a target inside a run folder is refused rather than written through or replaced.
- HDF5 files are built in memory and written with plain ``os.write``, and read from memory after one
  ``read``: HDF5's own file driver never touches the disk, so an ENOSPC cannot leave it in a half-closed
  state (it used to segfault), and a file cannot change between its validation and its use.
- Before any dataset is read, :func:`check_h5_objects` refuses soft and external links, external storage
  (a dataset whose bytes live in another file of the machine) and virtual datasets.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlcli.config.fields import ConfigError
from rlcli.storage.errors import CorruptFileError, FileAccessError, InvalidFileError, WriteFailedError

MAX_H5_OBJECTS = 100_000  # groups + datasets one file may hold (a cycle of hard links stops here)


def refuse_symlink(path: Path) -> None:
    """ConfigError (exit 2) when ``path`` or its folder is a symbolic link: rlcli never writes through one."""
    for p in (path, path.parent):
        if p.is_symlink():
            raise ConfigError(f"'{p}' is a symbolic link; rlcli does not write through links in a run folder "
                              f"(remove it)")


def make_dirs(path: Path) -> None:
    """``mkdir -p``; a failure is a WriteFailedError naming the folder."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"'{path}' is a file, not a folder") from None
    except NotADirectoryError:
        raise ConfigError(f"a part of '{path}' is a file, not a folder") from None
    except OSError as e:
        raise WriteFailedError(path, e) from None


def write_atomic(path: Path | str, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` through a unique temporary file and a rename.

    ``fsync=False`` skips the flush to the device (metrics, rewritten every few seconds): a killed process
    still leaves a complete file, only a power cut could lose the latest version.
    """
    path = Path(path)
    make_dirs(path.parent)
    refuse_symlink(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = -1
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException as e:  # a second Ctrl-C too: never leave the temporary file behind
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, IsADirectoryError):
            raise ConfigError(f"'{path}' is a folder, not a file") from None
        if isinstance(e, OSError):
            raise WriteFailedError(path, e) from None
        raise


def h5_bytes(write: Callable[[Any], None]) -> bytes:
    """The bytes of an HDF5 file that ``write(h5file)`` fills, built in memory."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        write(f)
    return buffer.getvalue()


def write_h5_atomic(path: Path | str, write: Callable[[Any], None], *, fsync: bool = True) -> None:
    """Call ``write(h5file)`` on an in-memory HDF5 file, then :func:`write_atomic` it to ``path``."""
    write_atomic(path, h5_bytes(write), fsync=fsync)


def read_bytes(path: Path | str, max_bytes: int, head: int | None = None) -> bytes:
    """The whole file (its first ``head`` bytes with ``head``); a missing file is FileNotFoundError, a
    denied one FileAccessError, an oversized one InvalidFileError (nothing is read past ``max_bytes``)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise InvalidFileError(path, f"it is {size / 2**20:.0f} MiB, over the {max_bytes / 2**20:.0f} MiB "
                                             f"this kind of file may have")
            return fh.read(max_bytes + 1 if head is None else head)
    except FileNotFoundError:
        raise FileNotFoundError(f"'{path}' does not exist") from None
    except PermissionError:
        raise FileAccessError(path, "permission denied") from None
    except IsADirectoryError:
        raise CorruptFileError(path, "it is a folder, not a file") from None
    except CorruptFileError:
        raise
    except OSError as e:
        raise CorruptFileError(path, e.strerror or type(e).__name__) from None


def open_h5_bytes(path: Path | str, data: bytes):
    """An h5py.File (read-only) over ``data`` read from ``path``, after :func:`check_h5_objects`."""
    import h5py

    try:
        f = h5py.File(io.BytesIO(data), "r")
    except (OSError, ValueError) as e:
        raise CorruptFileError(path, "it is not an HDF5 file" if data[:8] != b"\x89HDF\r\n\x1a\n"
                               else (str(e).splitlines()[0] if str(e) else type(e).__name__)) from None
    try:
        check_h5_objects(f, path)
    except BaseException:
        f.close()
        raise
    return f


def check_h5_objects(f: Any, path: Path | str) -> None:
    """Refuse soft/external links, external storage and virtual datasets anywhere in the file."""
    import h5py

    count = 0
    stack = [("", f)]
    while stack:
        prefix, group = stack.pop()
        for name in group:
            count += 1
            if count > MAX_H5_OBJECTS:
                raise InvalidFileError(path, f"it holds more than {MAX_H5_OBJECTS} objects")
            full = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.SoftLink | h5py.ExternalLink):
                raise InvalidFileError(path, f"'{full}' is a link ({type(link).__name__}); rlcli files hold none")
            try:
                obj = group[name]
            except (KeyError, OSError) as e:
                raise CorruptFileError(path, f"'{full}': {str(e).splitlines()[0] if str(e) else 'unreadable'}") \
                    from None
            if isinstance(obj, h5py.Group):
                stack.append((full, obj))
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    raise InvalidFileError(path, f"dataset '{full}' is a virtual dataset; rlcli files hold none")
                if obj.id.get_create_plist().get_external_count() > 0:
                    raise InvalidFileError(path, f"dataset '{full}' keeps its data in another file (HDF5 "
                                                 f"external storage); rlcli files hold none")
            else:
                raise InvalidFileError(path, f"'{full}' is a {type(obj).__name__}, not a group or dataset")
