"""Run a study: every run of the plan in its own process, ``workers`` at a time, restartable.

State of a run, read from its folder before anything is launched:

- ``done``: ``checkpoints/last.h5`` reached ``run.total_steps`` and ``shift.h5`` holds the study's levels
  -> skipped, so rerunning the same command after a crash continues where it stopped;
- ``evaluate``: trained, but the shift evaluation is missing -> only evaluated;
- ``resume``: a readable last checkpoint short of ``run.total_steps`` -> resumed from it (exactly);
- ``restart``: a folder without a last checkpoint (killed before its first save) -> started again in place
  (the worker's ``train`` replaces its config and metrics; nothing is deleted here);
- ``new``: no folder yet;
- ``busy``: another process holds the run folder's lock (an earlier study still running, a ``rlcli train
  --resume`` by hand) -> not touched and not launched; the study reports it and exits 1.

Each launched run is ``python -m rlcli.study.worker`` with its resolved config saved in
``<runs_dir>/.study/<name>.toml`` and its output in ``<runs_dir>/.study/<name>.log``; a crash, a kill or a
leak in one run leaves the others running. A worker holds its run folder's lock while it writes, and dies
with the runner: when the runner dies (even by kill -9) each worker gets SIGINT, so it saves a checkpoint
at the end of its iteration and stops (see :mod:`rlcli.study.worker`). After each finished run the best checkpoint of its
algorithm+environment (highest ``eval_return`` of the runs' ``checkpoints/best.h5``; ties go to the run
earlier in the plan) is copied to ``<runs_dir>/best/<algo>-<env>.h5`` and recorded, with the technique
and seed that produced it, in ``<runs_dir>/best/best.toml``.

Ctrl-C (SIGINT to the process group, as a terminal sends it): running runs save a checkpoint and stop,
no new run starts, and the command exits 2; rerunning it resumes them. A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from rlcli.engine.progress import CountReporter
from rlcli.engine.signals import InterruptFlag
from rlcli.study.spec import Study, StudyRun, load_study
from rlcli.study.worker import PARENT_ENV

STUDY_DIR = ".study"
BEST_DIR = "best"
BEST_RECORD = "best.toml"


@dataclass
class RunOutcome:
    run: StudyRun
    state: str  # what was found before: done, evaluate, resume, restart, new, busy
    status: str  # skipped, done, failed, busy (held by another process), interrupted (stopped by Ctrl-C) or
    # cancelled (never started)
    seconds: float = 0.0  # wall time of the run's process
    returncode: int | None = None
    log: Path | None = None
    error: str = ""  # why the run could not be launched (its process never ran)


@dataclass
class StudyResult:
    study: Study
    outcomes: list[RunOutcome]
    wall_time: float  # s
    interrupted: bool = False  # Ctrl-C: running runs saved a checkpoint, the rest were not started

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status in ("failed", "busy")]




def _attr(path: Path, key: str) -> float | None:
    """A root attribute of an HDF5 file, or None when the file is missing or unreadable."""
    from rlcli.storage.files import open_h5_bytes, read_bytes

    try:
        with open_h5_bytes(path, read_bytes(path, 2**20 * 64)) as f:
            return float(f.attrs[key])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def run_state(run: StudyRun, levels: list[float]) -> str:
    """done, evaluate, resume, restart, new or busy (module docstring)."""
    from rlcli.storage.errors import CorruptFileError
    from rlcli.storage.runs import CHECKPOINT_LAST, LOCK_FILE, has_checkpoint, lock_holder
    from rlcli.storage.shift import SHIFT_FILE, read_shift

    d = run.run_dir
    if lock_holder(d) is not None:
        return "busy"
    if not d.is_dir() or not any(e.name != LOCK_FILE for e in d.iterdir()):
        return "new"
    step = _attr(d / CHECKPOINT_LAST, "step")
    if step is None:
        # no checkpoint: restart in place; an unreadable one: resume, whose validation says what is wrong
        return "resume" if has_checkpoint(d) else "restart"
    if step < run.cfg.run.total_steps:
        return "resume"
    try:
        shift = read_shift(d / SHIFT_FILE)
    except CorruptFileError:
        shift = None
    if shift is None or not np.allclose(shift.levels, levels) or shift.step < run.cfg.run.total_steps:
        return "evaluate"
    return "done"


def _write_atomic(path: Path, text: str) -> None:
    from rlcli.storage.files import write_atomic

    write_atomic(path, text.encode())


def update_best(study: Study, algo: str, env: str) -> dict | None:
    """Keep the best checkpoint of ``algo`` on ``env`` among the study's finished runs; returns its record."""
    import tomli_w

    from rlcli.config.presets import read_toml
    from rlcli.storage.runs import CHECKPOINT_BEST

    candidates = []
    for run in study.runs:
        if run.algo == algo and run.env == env and run_state(run, study.shift) == "done":
            score = _attr(run.run_dir / CHECKPOINT_BEST, "eval_return")
            if score is not None:
                candidates.append((-score, run.index, run))
    if not candidates:
        return None
    neg_score, _, best = min(candidates)
    key = f"{algo}-{env.replace(':', '-').lower()}"
    best_dir = study.runs_dir / BEST_DIR
    record_path = best_dir / BEST_RECORD
    records = read_toml(record_path) if record_path.is_file() else {}
    entry = {"run": best.name, "technique": best.technique, "seed": best.seed, "eval_return": -neg_score,
             "checkpoint": f"{key}.h5", "source": str(best.run_dir / CHECKPOINT_BEST)}
    if records.get(key) != entry or not (best_dir / entry["checkpoint"]).is_file():
        from rlcli.storage.checkpoint import DEFAULT_MAX_BYTES
        from rlcli.storage.files import read_bytes, write_atomic

        buffer = io.BytesIO(read_bytes(best.run_dir / CHECKPOINT_BEST, DEFAULT_MAX_BYTES))
        with h5py.File(buffer, "a") as f:  # a copy with the study's labels, edited in memory
            for k in ("run", "technique", "seed"):
                f.attrs[f"study_{k}"] = entry[k]
        write_atomic(best_dir / entry["checkpoint"], buffer.getvalue())
        records[key] = entry
        _write_atomic(record_path, tomli_w.dumps(records))
    return entry


def _summary(run: StudyRun) -> str:
    from rlcli.storage.metrics import read_metrics
    from rlcli.storage.runs import METRICS_FILE
    from rlcli.storage.shift import SHIFT_FILE

    parts = []
    evals = read_metrics(run.run_dir / METRICS_FILE).get("eval_return")
    if evals is not None and len(evals):
        parts.append(f"eval return {evals[-1, 1]:.1f}")
    grs = _attr(run.run_dir / SHIFT_FILE, "grs")
    if grs is not None:
        parts.append(f"GRS {grs:.3f}")
    return ", ".join(parts)


STEP_LINE = re.compile(rb"step (\d+)/(\d+)")  # the worker's progress lines (PlainReporter)


def running_note(logs: dict[str, Path]) -> str:
    """``"running: 42% 7%  ppo-...-s0  ppo-...-s1"``: how far each running run is (from the last progress
    line of its log; "eval" once trained, while its shift evaluation runs), then their names."""
    shares, names = [], []
    for name, log_path in logs.items():
        try:
            with open(log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
                found = STEP_LINE.findall(f.read())
        except OSError:
            found = []
        step, total = (int(x) for x in found[-1]) if found else (0, 0)
        shares.append(("eval" if step >= total else f"{step / total:.0%}") if total else "start")
        names.append(name)
    return "  ".join([f"running: {' '.join(shares)}", *names]) if names else ""


def run_study(path: str | Path, workers: int | None = None, dry_run: bool = False,
              log: Callable[[str], None] = print, reporter: CountReporter | None = None,
              ray: str | None = None) -> StudyResult:
    """Run (or with ``dry_run`` only list) the study in ``path``; see the module docstring.

    ``reporter`` (a :class:`~rlcli.engine.progress.CountReporter`) follows the runs finished, with how far
    each running run is, every 2 s.

    Raises ConfigError before anything starts when the study file is wrong. Failed runs do not raise:
    they are in ``StudyResult.failed`` (their logs say why), and rerunning retries them. With ``ray`` ("auto"
    or a cluster address) each run is a Ray task instead of a local process (:mod:`rlcli.study.ray_backend`).
    """
    study = load_study(path, workers)
    states = {run.name: run_state(run, study.shift) for run in study.runs}
    counts = {s: sum(v == s for v in states.values())
              for s in ("done", "evaluate", "resume", "restart", "new", "busy")}
    logs = study.runs_dir / STUDY_DIR
    labels = {"done": "complete", "evaluate": "to evaluate", "resume": "to resume", "restart": "to restart",
              "new": "new", "busy": "held by another process"}
    log(f"study {study.path}: {len(study.runs)} runs in {study.runs_dir} ("
        + ", ".join(f"{n} {labels[s]}" for s, n in counts.items() if n) + f"), {study.workers} at a time")
    if dry_run:
        for run in study.runs:
            log(f"  {states[run.name]:8s} {run.name}  ({run.cfg.run.total_steps} steps)")
        return StudyResult(study, [RunOutcome(r, states[r.name], "skipped") for r in study.runs], 0.0)

    start = time.perf_counter()
    todo = [run for run in study.runs if states[run.name] != "done"]
    outcomes = [RunOutcome(r, "done", "skipped") for r in study.runs if states[r.name] == "done"]
    finished = 0
    interrupt = InterruptFlag()
    running: dict[str, Path] = {}  # name -> log, of the runs whose process is running now
    reporter = reporter or CountReporter()
    cluster = None
    if ray is not None:
        from rlcli.study.ray_backend import RayLauncher

        cluster = RayLauncher(ray, lambda: interrupt.set)

    def job(run: StudyRun) -> RunOutcome:
        from rlcli.storage.runs import lock_holder

        state = states[run.name]
        if interrupt.set:
            return RunOutcome(run, state, "cancelled")
        holder = lock_holder(run.run_dir) if state != "busy" else None
        if state == "busy" or holder is not None:  # never train a run twice, never touch one another process writes
            holder = holder if holder is not None else lock_holder(run.run_dir)
            return RunOutcome(run, state, "busy", error=f"held by process {holder or '(ended since)'}")
        config_path, log_path = logs / f"{run.name}.toml", logs / f"{run.name}.log"
        mode = {"new": "new", "restart": "new", "resume": "resume", "evaluate": "evaluate"}[state]
        cmd = [sys.executable, "-m", "rlcli.study.worker", str(config_path), str(run.run_dir), mode,
               ",".join(f"{lv:g}" for lv in study.shift), str(study.shift_episodes)]
        t0 = time.perf_counter()
        try:
            _write_atomic(config_path, run.cfg.to_toml())
            with open(log_path, "a") as out:
                out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {mode}: {' '.join(cmd)}\n")
                out.flush()
                running[run.name] = log_path
                env = {**os.environ, PARENT_ENV: str(os.getpid())}  # the worker stops when this process dies
                try:
                    rc = (subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
                          if cluster is None else cluster.launch(run.cfg, cmd, log_path))
                finally:
                    running.pop(run.name, None)
        except OSError as e:  # the run could not even start (disk full, folder not removable, ...)
            return RunOutcome(run, state, "failed", time.perf_counter() - t0, None, log_path, str(e))
        status = "done" if rc == 0 else "interrupted" if interrupt.set else "failed"
        return RunOutcome(run, state, status, time.perf_counter() - t0, rc, log_path)

    pool = ThreadPoolExecutor(max_workers=study.workers if cluster is None else max(1, len(todo)))
    reporter.start("study runs", len(todo))
    with interrupt:
        try:
            pending = {pool.submit(job, run) for run in todo}
            while pending:
                done, pending = wait(pending, timeout=2.0, return_when=FIRST_COMPLETED)
                for future in done:
                    outcome = future.result()
                    outcomes.append(outcome)
                    finished += outcome.status != "cancelled"
                    run = outcome.run
                    if outcome.status == "done":
                        best = update_best(study, run.algo, run.env)
                        log(f"[{finished}/{len(todo)}] {run.name} done in {outcome.seconds:.1f} s "
                            f"({outcome.state}): {_summary(run)}"
                            + (f"; best {run.algo} on {run.env}: {best['run']}" if best else ""))
                    elif outcome.status == "interrupted":
                        log(f"[{finished}/{len(todo)}] {run.name} interrupted; rerunning the study resumes it")
                    elif outcome.status == "busy":
                        log(f"[{finished}/{len(todo)}] {run.name} not started: its folder is {outcome.error}; "
                            f"rerun the study when that process has finished")
                    elif outcome.status == "failed":
                        why = outcome.error or f"exit {outcome.returncode}"
                        log(f"[{finished}/{len(todo)}] {run.name} FAILED ({why}) after "
                            f"{outcome.seconds:.1f} s; log: {outcome.log}")
                reporter.update(finished, running_note(dict(running)))
        finally:
            reporter.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            if cluster is not None:
                cluster.close()
    outcomes.sort(key=lambda o: o.run.index)
    result = StudyResult(study, outcomes, time.perf_counter() - start, interrupt.set)
    tally = {s: sum(o.status == s for o in outcomes)
             for s in ("done", "failed", "busy", "interrupted", "cancelled")}
    log(f"study {'interrupted' if interrupt.set else 'finished'} after {result.wall_time:.1f} s: "
        f"{tally['done']} ran, {counts['done']} skipped (complete), {tally['failed']} failed"
        + (f", {tally['busy']} held by other processes" if tally["busy"] else "")
        + (f", {tally['interrupted']} interrupted, {tally['cancelled']} not started" if interrupt.set else ""))
    return result
