"""The run folder layout: ``runs/<name>/{config.toml, metrics.h5, checkpoints/*.h5, videos/, tb/, profile/}``.

A process that writes a run folder holds :class:`RunLock` on ``<run>/.lock`` (``fcntl.flock``: the OS
drops it when the process dies, however it dies); a second writer gets a ConfigError naming the holder.
Run names are single path components, so no run writes outside ``runs_dir``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from rlcli.config.fields import ConfigError
from rlcli.storage.errors import WriteFailedError
from rlcli.storage.files import make_dirs, write_atomic

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.h5"
CHECKPOINT_LAST = "checkpoints/last.h5"
CHECKPOINT_BEST = "checkpoints/best.h5"
LOCK_FILE = ".lock"
# what a run leaves before its first checkpoint; a folder holding only these can be started again
RESTARTABLE_ENTRIES = {LOCK_FILE, CONFIG_FILE, METRICS_FILE, "checkpoints", "tb", "videos", "profile"}


def write_config(run_dir: Path, cfg) -> None:
    """Write the fully resolved config atomically (secrets never live in the config)."""
    write_atomic(run_dir / CONFIG_FILE, cfg.to_toml().encode())


def check_run_name(name: str) -> None:
    """ConfigError unless ``name`` is one path component (no '/', not '.' or '..', not absolute)."""
    if (not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name
            or (os.altsep and os.altsep in name)):
        raise ConfigError(f"run.name {name!r} must be a single folder name (no '/', not '.' or '..'); the run "
                          f"folder is run.runs_dir/run.name")


def check_runs_dir(runs_dir: Path) -> None:
    if runs_dir.exists() and not runs_dir.is_dir():
        raise ConfigError(f"run.runs_dir '{runs_dir}' is a file, not a folder")


def has_checkpoint(run_dir: Path) -> bool:
    return os.path.lexists(run_dir / CHECKPOINT_LAST)


def is_restartable(run_dir: Path) -> bool:
    """True when ``run_dir`` is missing, empty, or holds only what a run killed before its first
    checkpoint leaves (config, metrics, no checkpoint)."""
    if not run_dir.is_dir():
        return not run_dir.exists()
    if has_checkpoint(run_dir):
        return False
    return all(entry.name in RESTARTABLE_ENTRIES or entry.name.endswith(".tmp") for entry in run_dir.iterdir())


class RunLock:
    """Exclusive lock of a run folder for one writing process (context manager).

    The lock file stays empty: the holder's pid comes from ``/proc/locks``, so taking the lock changes no
    file's content. A folder the lock had to create is removed again by :meth:`release` when nothing else
    was written into it (bad input leaves nothing behind).
    """

    def __init__(self, run_dir: Path | str):
        self.run_dir = Path(run_dir)
        self._fd: int | None = None
        self._created: list[Path] = []  # folders this lock created, innermost last

    def acquire(self) -> RunLock:
        missing = []
        for p in [self.run_dir, *self.run_dir.parents]:
            if p.exists():
                break
            missing.append(p)
        make_dirs(self.run_dir)
        self._created = missing[::-1]
        path = self.run_dir / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            self._remove_created()
            if path.is_symlink():
                raise ConfigError(f"'{path}' is a symbolic link; remove it") from None
            raise WriteFailedError(path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _flock_holder(fd)
            os.close(fd)
            raise ConfigError(f"run folder '{self.run_dir}' is in use by process {holder or '(unknown)'}; wait "
                              f"for it to finish or stop it") from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            self._remove_created()
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def _remove_created(self) -> None:
        if not self._created:
            return
        with contextlib.suppress(OSError):
            if [p.name for p in self.run_dir.iterdir()] == [LOCK_FILE]:
                (self.run_dir / LOCK_FILE).unlink()
            for folder in reversed(self._created):
                folder.rmdir()  # only when empty: anything written stays

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _flock_holder(fd: int) -> int | None:
    """The pid holding a flock on the file open as ``fd``, from /proc/locks (Linux); None elsewhere."""
    st = os.fstat(fd)
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and not parts[0].endswith("->"):
            major, minor, inode = parts[5].split(":")
            if int(inode) == st.st_ino and int(major, 16) == os.major(st.st_dev) \
                    and int(minor, 16) == os.minor(st.st_dev):
                return int(parts[4])
    return None


def lock_holder(run_dir: Path | str) -> int | None:
    """The pid holding ``run_dir``'s lock (0 when it cannot be told), or None when free. Creates nothing."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _flock_holder(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run folders among ``paths`` (each a run folder or a folder of runs, searched recursively)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ConfigError(f"'{p}' does not exist")
        if is_run_dir(p):
            found.append(p)
        else:
            found.extend(sorted(c.parent for c in p.rglob(CONFIG_FILE)))
    return found


def resolve_checkpoint(run_or_checkpoint: str | Path, which: str = "last") -> Path:
    """A run folder -> its ``checkpoints/<which>.h5``; a ``.h5`` path -> itself."""
    p = Path(run_or_checkpoint)
    if p.is_file():
        return p
    if p.is_dir():
        ckpt = p / "checkpoints" / f"{which}.h5"
        if ckpt.is_file():
            return ckpt
        if which != "last" and (p / CHECKPOINT_LAST).is_file():  # never another checkpoint than the one asked for
            raise ConfigError(f"'{p}' has no {which} checkpoint ({ckpt} is written when an evaluation scores "
                              "best); use --checkpoint last")
        raise ConfigError(f"'{p}' has no checkpoint (expected {p / CHECKPOINT_LAST})")
    raise ConfigError(f"'{p}' is neither a run folder nor a checkpoint file")
