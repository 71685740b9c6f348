"""A collection sharded over its agents: ``rlcli collect darkroom --out data.h5 --shards N [--ray auto|ADDRESS]``.

The agents of :func:`rlcli.ad.collect.source_agents` are cut into ``shards`` contiguous blocks. Shard k is an
ordinary, resumable collection of its block (:func:`rlcli.ad.collect.collect` with ``agents``) into its own
histories file beside ``out`` (``data.h5`` -> ``data.shard-000.h5``, run folder ``data.shard-000.collect/``).
Every agent keeps its global index, seed, task and action noise, so the histories do not depend on the
number of shards: a sharded collection writes what one process writes (bitwise, with ``run.torch_threads``
the same on every node).

Shards run one after another in this process, or with ``ray`` each as one Ray task on whichever node has
``run.torch_threads`` CPUs (and a GPU with ``run.device = "cuda"``) free. Shard files and run folders must
be on storage every node sees; a node that cannot write there fails its shard with that reason. A task
whose node dies is retried by Ray and resumes from the shard's last checkpoint. Running the same command
again after any failure skips the finished shards and resumes the others, so only the unfinished ones are
redone.

When every shard is complete, ``out`` is written as the index that joins them: a format-3 histories file
whose ``/transitions/<field>`` are HDF5 virtual datasets over the shards' (the shard files are named
relative to the index, so the folder may be mounted anywhere), whose small tables (segments, histories,
curves) are the shards' concatenated, and whose ``shards`` attribute lists the shard files. A
:class:`~rlcli.storage.histories.HistoryReader` opens it as one set of histories with the same fixed
number of HDF5 objects as a plain file.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from rlcli.ad.collect import (
    RUN_FOLDER_ENTRIES,
    CollectionInterrupted,
    CollectResult,
    collect,
    collection_run_dir,
    source_agents,
)
from rlcli.config.fields import ConfigError
from rlcli.config.schema import Config
from rlcli.engine.progress import CountReporter
from rlcli.storage.errors import CorruptFileError
from rlcli.storage.histories import FIELDS, SEGMENT_FIELDS, HistoryReader
from rlcli.storage.runs import CHECKPOINT_LAST

MAX_RETRIES = 3  # a shard whose node dies is tried again (resuming its checkpoint) this many times


class ShardsInterrupted(Exception):
    """Ctrl-C: the finished shards are kept and the running ones saved their state; rerun to resume."""


def shard_path(out: str | Path, shard: int) -> Path:
    """Shard ``shard``'s histories file: ``data.h5`` -> ``data.shard-003.h5``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.shard-{shard:03d}{out.suffix}")


def shard_agents(num_agents: int, shards: int) -> list[range]:
    """The agents of each shard: ``shards`` contiguous blocks whose sizes differ by at most one."""
    bounds = [num_agents * k // shards for k in range(shards + 1)]
    return [range(bounds[k], bounds[k + 1]) for k in range(shards)]


@dataclass
class ShardOutcome:
    """What one shard did (small: it travels back from a Ray task)."""

    shard: int
    env_steps: int = 0  # this call
    wall_time: float = 0.0  # s, this call
    resumed: bool = False
    skipped: bool = False  # complete already
    error: str = ""  # one line: why the shard could not run


def run_shard(cfg: Config, out: str, shard: int, agents: range) -> ShardOutcome:
    """Collect shard ``shard`` (``agents``) of the collection into ``out``'s shard file; the body of a shard's
    Ray task. A complete shard file with the same config is left alone; an unfinished one resumes from its
    checkpoint, or starts again when its first attempt died before saving one. Bad input and unwritable
    storage come back as ``error``."""
    path = shard_path(out, shard)
    run_dir = collection_run_dir(path)
    try:
        if path.exists():
            with HistoryReader(path) as r:
                complete, same = r.complete, r.config_toml == cfg.to_toml()
                same = same and np.unique(r.histories.agent).tolist() == list(agents)
            if complete and same:
                return ShardOutcome(shard, skipped=True)
            if same and not (run_dir / CHECKPOINT_LAST).is_file():  # died before its first checkpoint
                path.unlink()
                if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= RUN_FOLDER_ENTRIES:
                    shutil.rmtree(run_dir)
        result = collect(cfg, path, agents=agents)
    except (ConfigError, CorruptFileError) as e:
        # a refused location under the shards' folder (a file where a folder must be, a link) is storage
        where = ("; shard files must be on storage every node sees"
                 if isinstance(e, ConfigError) and str(path.parent) in str(e) else "")
        return ShardOutcome(shard, error=f"shard {shard}: {e}{where}")
    except OSError as e:
        return ShardOutcome(shard, error=(f"shard {shard} on {_node_name()} cannot write '{path}' "
                                          f"({e.strerror or e}); shard files must be on storage every node sees"))
    return ShardOutcome(shard, result.env_steps, result.wall_time, result.resumed)


def _node_name() -> str:
    import socket

    return socket.gethostname()


def _connect(address: str):
    """Ray, connected to the cluster at ``address`` ("auto": this machine's, or a new local one)."""
    from rlcli.study.ray_backend import _import_ray

    ray = _import_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=None if address == "auto" else address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot reach the Ray cluster at '{address}': {str(e).splitlines()[0]}") from None
    return ray


def _cpus_per_shard(cfg: Config) -> int:
    return max(1, cfg.run.torch_threads)


def _run_on_ray(ray, cfg: Config, out: Path, blocks: list[range],
                done: Callable[[int], None]) -> list[ShardOutcome]:
    task = ray.remote(max_retries=MAX_RETRIES)(run_shard).options(
        num_cpus=_cpus_per_shard(cfg), num_gpus=1 if cfg.run.device == "cuda" else 0)
    # an absolute path: a Ray worker's working directory is not the driver's
    pending = {task.remote(cfg, str(out.absolute()), k, agents): k for k, agents in enumerate(blocks)}
    outcomes = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ready[0])
            try:
                outcomes.append(ray.get(ready[0]))
            except ray.exceptions.RayError as e:  # retries used up (nodes kept dying), or Ray itself failed
                outcomes.append(ShardOutcome(k, error=f"shard {k}: Ray task failed: {str(e).splitlines()[0]}"))
            done(len(outcomes))
    except KeyboardInterrupt:
        for ref in pending:  # each shard checkpoints on SIGINT, as a local collection does on Ctrl-C
            ray.cancel(ref)
        ray.wait(list(pending), num_returns=len(pending), timeout=60)
        raise
    return sorted(outcomes, key=lambda o: o.shard)


def collect_sharded(cfg: Config, out: str | Path, shards: int | None, *, ray: str | None = None,
                    reporter: CountReporter | None = None) -> CollectResult:
    """Collect ``out`` as ``shards`` shards over the agents (one after another here, or as Ray tasks on the
    cluster ``ray``: "auto" or an address; there ``None`` is one shard per ``run.torch_threads`` CPUs of the
    cluster), then write ``out`` as their index. Rerunning after a failure or Ctrl-C redoes only the
    unfinished shards. Raises ConfigError for bad input (before any work), OSError naming the shards that
    failed (the finished ones stay), ShardsInterrupted after Ctrl-C."""
    out = Path(out)
    if cfg.env.id != "darkroom":
        raise ConfigError(f"collect supports env 'darkroom' only, got '{cfg.env.id}'")
    num_agents = len(source_agents(cfg)[0])
    if shards is None and not ray:
        raise ConfigError("a sharded collection needs --shards N or --ray")
    if shards is not None and not 1 <= shards <= num_agents:
        raise ConfigError(f"--shards must be in [1, {num_agents}] (the collection has {num_agents} agents), "
                          f"got {shards}")
    if out.exists():
        why = "is a complete collection" if _is_index(out) else "exists and is no sharded collection's index"
        raise ConfigError(f"'{out}' {why}; choose another --out or delete it")
    ray_module = _connect(ray) if ray else None
    if shards is None:
        cpus = int(ray_module.cluster_resources().get("CPU", 1))
        shards = max(1, min(num_agents, cpus // _cpus_per_shard(cfg)))
    blocks = shard_agents(num_agents, shards)
    try:
        _check_existing_shards(cfg, out, blocks)
    except BaseException:
        if ray_module is not None:
            ray_module.shutdown()
        raise
    reporter = reporter or CountReporter()
    reporter.start(f"collecting {shards} shards" + (" on Ray" if ray else ""), shards)
    start = time.monotonic()
    try:
        if ray_module is not None:
            outcomes = _run_on_ray(ray_module, cfg, out, blocks, reporter.update)
        else:
            outcomes = []
            for k, agents in enumerate(blocks):
                outcomes.append(run_shard(cfg, str(out), k, agents))
                reporter.update(k + 1)
    except (KeyboardInterrupt, CollectionInterrupted):
        raise ShardsInterrupted(f"interrupted; the finished shards are kept and the others saved their state; "
                                f"rerun the same command (--out {out}) to resume") from None
    finally:
        reporter.stop()
        if ray_module is not None:
            ray_module.shutdown()
    failed = [o.error for o in outcomes if o.error]
    if failed:
        raise OSError(f"{len(failed)} of {shards} shards failed ({failed[0]}); rerun the same command to redo "
                      f"only those")
    num_histories = write_index(out, [shard_path(out, k) for k in range(shards)])
    with HistoryReader(out) as r:
        _, returns, _, splits = r.curves()
    last = returns[splits == "train", -1] if returns.shape[1] else np.zeros(0)
    return CollectResult(out, collection_run_dir(shard_path(out, 0)), num_agents, num_histories,
                         sum(o.env_steps for o in outcomes), time.monotonic() - start,
                         any(o.resumed or o.skipped for o in outcomes),
                         float(np.nanmean(last)) if np.isfinite(last).any() else float("nan"))


def _check_existing_shards(cfg: Config, out: Path, blocks: list[range]) -> None:
    """ConfigError when a shard file already there belongs to another collection (other settings, or
    another --shards); those of this one are skipped (complete) or resumed."""
    for k, agents in enumerate(blocks):
        path = shard_path(out, k)
        if not path.exists():
            continue
        with HistoryReader(path) as r:
            same = r.config_toml == cfg.to_toml() and np.unique(r.histories.agent).tolist() == list(agents)
        if not same:
            raise ConfigError(f"'{path}' is a shard of another collection (other settings or --shards); rerun "
                              f"with the same command and settings, or delete the shard files")


def _is_index(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return "shards" in f.attrs
    except OSError:
        return False


def write_index(out: str | Path, shard_files: list[Path]) -> int:
    """Write ``out`` as the index of the complete histories files ``shard_files`` (in agent order, in ``out``'s
    folder); -> the number of histories. Written to a temporary name and renamed, so ``out`` exists only
    whole."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    readers = [HistoryReader(p) for p in shard_files]
    try:
        for p, r in zip(shard_files, readers, strict=True):
            if not r.complete:
                raise CorruptFileError(p, "the shard is not complete")
        files = [h5py.File(p, "r") for p in shard_files]
        try:
            _write_index_file(tmp, out, shard_files, files)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            for f in files:
                f.close()
    finally:
        for r in readers:
            r.close()
    tmp.replace(out)
    with h5py.File(out, "r") as f:
        return int(f.attrs["num_histories"])


def _write_index_file(tmp: Path, out: Path, shard_files: list[Path], files: list[h5py.File]) -> None:
    first = files[0]
    rows = [int(f["transitions/obs"].shape[0]) for f in files]
    histories = [int(f.attrs["num_histories"]) for f in files]
    row0, hist0 = np.cumsum([0, *rows]), np.cumsum([0, *histories])

    def concat(name: str) -> np.ndarray:
        return np.concatenate([f[name][()] for f in files])

    def copy_attrs(name: str, ds: h5py.Dataset) -> None:
        ds.attrs.update(dict(first[name].attrs))

    with h5py.File(tmp, "w") as g:
        g.attrs.update(dict(first.attrs))
        g.attrs.update({"num_agents": sum(int(f.attrs["num_agents"]) for f in files),
                        "num_histories": int(hist0[-1]), "complete": True,
                        "shards": json.dumps([p.name for p in shard_files])})
        for name, dtype in FIELDS.items():
            layout = h5py.VirtualLayout(shape=(int(row0[-1]),), dtype=dtype)
            for k, p in enumerate(shard_files):
                if rows[k]:  # by name: HDF5 looks for a relative source file in the index's folder
                    layout[row0[k]:row0[k + 1]] = h5py.VirtualSource(p.name, f"transitions/{name}",
                                                                     shape=(rows[k],))
            copy_attrs(f"transitions/{name}", g.create_virtual_dataset(f"transitions/{name}", layout))
        shift = {"history": hist0, "row": row0}
        for name in SEGMENT_FIELDS:
            data = np.concatenate([f[f"segments/{name}"][()] + (shift[name][k] if name in shift else 0)
                                   for k, f in enumerate(files)])
            copy_attrs(f"segments/{name}", g.create_dataset(f"segments/{name}", data=data))
        for name in ("histories/task", "histories/agent", "histories/stream", "histories/split",
                     "curves/tasks", "curves/splits", "curves/returns"):  # returns: (agents, points)
            copy_attrs(name, g.create_dataset(name, data=concat(name)))
        for name in ("tasks/id", "tasks/split", "curves/steps"):
            copy_attrs(name, g.create_dataset(name, data=first[name][()]))
