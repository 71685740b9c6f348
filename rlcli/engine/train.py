"""The one training loop: ``rlcli.train(cfg)``.

It drives any :class:`~rlcli.engine.algorithm.Algorithm` and owns what they all share: the run folder,
``config.toml``, metrics.h5 (and TensorBoard), periodic and best checkpoints, evaluation, progress,
Ctrl-C (finish the iteration, save, stop) and resume (``train(cfg, resume=run_dir)``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rlcli.config.fields import ConfigError
from rlcli.config.schema import Config
from rlcli.engine import distributed
from rlcli.engine.algorithm import Algorithm
from rlcli.engine.precision import autocast, compile_networks
from rlcli.engine.progress import Progress, Reporter
from rlcli.engine.seeding import resolve_device, seed_everything
from rlcli.engine.signals import InterruptFlag
from rlcli.engine.timing import SETUP, PhaseTimer
from rlcli.storage.checkpoint import (
    DEFAULT_MAX_BYTES,
    Checkpoint,
    first_non_finite,
    flatten,
    load_checkpoint,
    save_checkpoint,
)
from rlcli.storage.errors import InvalidFileError, NonFiniteError
from rlcli.storage.files import refuse_symlink
from rlcli.storage.metrics import MetricsWriter
from rlcli.storage.runs import (
    CHECKPOINT_BEST,
    CHECKPOINT_LAST,
    METRICS_FILE,
    RunLock,
    check_run_name,
    check_runs_dir,
    has_checkpoint,
    is_restartable,
    write_config,
)

# a checkpoint may hold this many times the bytes of a fresh state (optimizer moments), and at least
# DEFAULT_MAX_BYTES (a replay buffer's rows, absent from a fresh state)
CHECKPOINT_CAP_FACTOR = 4


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    wall_time: float  # seconds of this call (not of earlier runs resumed from)
    steps_per_second: float
    final_eval_return: float | None
    final_eval_std: float | None
    interrupted: bool = False
    phase_times: dict[str, float] = field(default_factory=dict)


class TrainingInterrupted(Exception):
    """Ctrl-C: the checkpoint is saved; ``result`` says where."""

    def __init__(self, result: TrainResult):
        super().__init__(f"interrupted at step {result.steps}; checkpoint saved in {result.run_dir}")
        self.result = result


def default_run_name(cfg: Config) -> str:
    env = cfg.env.id.replace(":", "-").lower()
    tech = cfg.run.technique.replace("+", "-")
    return f"{cfg.algo}-{env}-{tech}-s{cfg.run.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def build_algorithm(cfg: Config, algorithm: Callable[[Config, torch.device], Algorithm] | None = None) -> Algorithm:
    from rlcli.registry import algorithm_class

    seed_everything(cfg.run.seed)
    if cfg.run.torch_threads:
        torch.set_num_threads(cfg.run.torch_threads)
    return (algorithm or algorithm_class(cfg.algo))(cfg, resolve_device(cfg.run.device))


def evaluate_algorithm(algo: Algorithm, cfg: Config, episodes: int | None = None,
                       deterministic: bool = True) -> tuple[np.ndarray, np.ndarray]:
    return algo.evaluate(cfg, episodes or cfg.run.eval_episodes, deterministic)




def restore_checkpoint(algo: Algorithm, path: Path, algo_name: str, weights_only: bool = False,
                       adapt: Callable[[Checkpoint], Checkpoint] | None = None) -> Checkpoint:
    """Validate the checkpoint at ``path`` against ``algo`` (built from the config) and load it into ``algo``.

    Everything that can be checked is checked before ``algo`` changes: the file (size capped by the state
    this config builds), its attributes, the weights' shapes and every dtype against ``algo.state()``
    (only the model's with ``weights_only``). Whatever ``load_state`` still refuses is an InvalidFileError
    too, so a bad checkpoint is always one line, exit 2. ``adapt`` turns the checkpoint into what this
    process loads (a torchrun rank's share).
    """
    try:
        expected: dict | None = algo.state()[0]
    except (AttributeError, RuntimeError, TypeError, ValueError):
        expected = None  # a state that exists only once loaded (a collection's open histories file)
    state_bytes = 0 if expected is None else sum(
        t.numel() * t.element_size() if isinstance(t, torch.Tensor) else np.asarray(t).nbytes
        for t in flatten(expected).values())
    ckpt = load_checkpoint(path, require=("algo", "config", "step"),
                           max_bytes=max(DEFAULT_MAX_BYTES, CHECKPOINT_CAP_FACTOR * state_bytes))
    if ckpt.attrs["algo"] != algo_name:
        raise ConfigError(f"'{path}' holds a '{ckpt.attrs['algo']}' run, not '{algo_name}'")
    if expected is not None:
        ckpt.check_tensors(expected, groups=["model"] if weights_only else None)
    try:
        if weights_only:
            algo.load_state(ckpt, weights_only=True)
        else:
            algo.load_state(adapt(ckpt) if adapt is not None else ckpt)
    except (KeyError, IndexError, RuntimeError, TypeError, ValueError, AttributeError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidFileError(path, f"it does not fit the {algo_name} model this config builds ({why})") from None
    return ckpt


def non_finite_quantity(algo: Algorithm, metrics: dict[str, float]) -> str | None:
    """What became NaN or Inf: a loss or gradient norm among ``metrics``, or a parameter or gradient of a
    network the algorithm holds; None when all are finite. Explained variance and the like may be NaN
    legitimately (a constant return), so only losses and gradient norms among the metrics are checked."""
    for name, value in metrics.items():
        if ("loss" in name or "grad" in name) and not math.isfinite(float(value)):
            return f"{name} is {float(value)}"
    for attr, value in vars(algo).items():
        named = (value.named_parameters() if isinstance(value, torch.nn.Module)
                 else [("", value)] if isinstance(value, torch.nn.Parameter) else [])
        for name, param in named:
            label = f"{attr}.{name}" if name else attr
            if not bool(torch.isfinite(param.detach()).all()):
                return f"parameter {label} holds NaN or Inf"
            if param.grad is not None and not bool(torch.isfinite(param.grad).all()):
                return f"the gradient of {label} holds NaN or Inf"
    return None


def _tb_tag(name: str) -> str:
    if name.startswith("eval_"):
        return f"eval/{name.removeprefix('eval_')}"
    if name.startswith("episode_"):
        return f"rollout/{name}"
    if name in ("steps_per_second", "wall_time"):
        return f"time/{name}"
    return f"train/{name}"


def train(cfg: Config, *, resume: str | Path | None = None, reporter: Reporter | None = None,
          timer: PhaseTimer | None = None,
          callbacks: list[Callable[[int], None]] | None = None, run_dir: str | Path | None = None,
          algorithm: Callable[[Config, torch.device], Algorithm] | None = None) -> TrainResult:
    """Train ``cfg.algo`` for ``cfg.run.total_steps`` env steps; returns a :class:`TrainResult`.

    With ``resume`` (a run folder), the algorithm is restored from ``checkpoints/last.h5`` and training
    continues until ``cfg.run.total_steps``; metrics logged after that checkpoint are dropped first.
    Raises :class:`TrainingInterrupted` after Ctrl-C (a checkpoint was saved), ConfigError for bad input,
    CorruptFileError for an unreadable checkpoint or metrics file. Each of ``callbacks`` is called with
    the env step after every iteration (``rlcli profile`` steps torch.profiler's schedule this way).
    ``run_dir`` puts a new run in that folder instead of ``run.runs_dir/run.name``; ``algorithm`` builds
    the learner instead of ``cfg.algo``'s class (``rlcli collect`` drives its source agents this way).
    """
    reporter = reporter or Reporter()
    timer = timer or PhaseTimer()
    group = distributed.setup(cfg.algo, cfg.run.device)  # None unless launched by torchrun
    main = group is None or group.is_main  # rank 0 alone writes the run folder and reports
    if not main:
        reporter = Reporter()
    if resume is not None:
        run_dir = Path(resume)
        if not run_dir.is_dir():
            raise ConfigError(f"'{run_dir}' is not a run folder")
    else:
        if run_dir is not None:  # a folder the caller chose (rlcli collect's source agents)
            run_dir = Path(run_dir)
            name = run_dir.name
        else:
            name = distributed.broadcast_object(cfg.run.name or default_run_name(cfg))
            check_run_name(name)
            check_runs_dir(Path(cfg.run.runs_dir))
            run_dir = Path(cfg.run.runs_dir) / name
        cfg.run.name = name
    # rank 0 alone writes the run folder, so it alone holds the lock; the OS drops it if the process dies
    lock = RunLock(run_dir).acquire() if main else None
    try:
        return _train_locked(cfg, run_dir, resume is not None, reporter, timer, callbacks, algorithm, main)
    finally:
        if lock is not None:
            lock.release()


def _train_locked(cfg: Config, run_dir: Path, resuming: bool, reporter: Reporter, timer: PhaseTimer,
                  callbacks: list[Callable[[int], None]] | None,
                  algorithm: Callable[[Config, torch.device], Algorithm] | None, main: bool) -> TrainResult:
    # a run killed before its first checkpoint has nothing to resume: it starts again, under its name or resumed
    if distributed.broadcast_object(not resuming and not is_restartable(run_dir)):  # rank 0's view
        raise ConfigError(f"run folder '{run_dir}' already exists; pick another --name or --resume it")
    resuming = distributed.broadcast_object(resuming and has_checkpoint(run_dir))
    if main:
        for stale in [*run_dir.glob(".*.tmp"), *run_dir.glob("checkpoints/.*.tmp")]:
            stale.unlink(missing_ok=True)  # left by a killed writer; this process holds the lock, none is live

    with timer.phase(SETUP):  # building envs and networks, restoring a checkpoint; nothing is written
        algo = build_algorithm(distributed.rank_config(cfg), algorithm)
        if cfg.run.compile:
            compile_networks(algo)
        distributed.prepare(algo)
        try:
            ckpt = (restore_checkpoint(algo, run_dir / CHECKPOINT_LAST, cfg.algo,
                                       adapt=distributed.checkpoint_for_rank) if resuming else None)
            # reads and validates the old rows; the file is first rewritten at the first flush
            metrics = (MetricsWriter(run_dir / METRICS_FILE, keep_existing=resuming,
                                     truncate_after_step=int(ckpt.attrs["step"]) if ckpt is not None else None)
                       if main else distributed.NoMetrics())
            if main:
                refuse_symlink(run_dir / CHECKPOINT_LAST)
                refuse_symlink(run_dir / CHECKPOINT_BEST)
                write_config(run_dir, cfg)
        except BaseException:
            algo.close()
            raise
        tb = None
        if cfg.run.tensorboard and main:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(run_dir / "tb"))

    best_eval = float(ckpt.attrs.get("best_eval_return", -math.inf)) if ckpt is not None else -math.inf
    earlier_wall_time = float(ckpt.attrs.get("wall_time", 0.0)) if ckpt is not None else 0.0  # s, runs resumed from
    last_saved = int(ckpt.attrs["step"]) if ckpt is not None else None  # step of checkpoints/last.h5

    def diverged(step: int, what: str) -> NonFiniteError:
        kept = (f"{run_dir / CHECKPOINT_LAST} keeps step {last_saved}" if last_saved is not None
                else "no checkpoint was saved")
        return NonFiniteError(f"training diverged at step {step}: {what}; {kept} (lower the learning rate?)")

    def save(name: str, eval_return: float | None = None) -> None:
        nonlocal last_saved
        with timer.phase("storage"):
            metrics.flush()  # the metrics reach at least the checkpoint's step: a resume logs each step once
            state = distributed.gather_state(*algo.state())  # None on ranks other than 0: rank 0 writes
            bad = distributed.broadcast_object(first_non_finite(state[0]) if state is not None else None)
            if bad is not None:
                raise diverged(algo.env_steps, f"'{bad}' holds NaN or Inf")
            if state is not None:
                tensors, documents = state
                attrs = {"algo": cfg.algo, "config": cfg.to_toml(), "step": algo.env_steps,
                         "best_eval_return": best_eval,
                         "wall_time": earlier_wall_time + time.perf_counter() - start_time}
                if eval_return is not None:
                    attrs["eval_return"] = eval_return
                save_checkpoint(run_dir / name, tensors, attrs, documents)
            distributed.barrier()  # the checkpoint is on disk before any rank goes on (and may resume from it)
            if name == CHECKPOINT_LAST:
                last_saved = algo.env_steps

    def log(step: int, values: dict[str, float]) -> None:
        metrics.log(step, **values)
        if tb is not None:
            for k, v in values.items():
                tb.add_scalar(_tb_tag(k), v, step)

    def evaluate_now() -> tuple[float, float]:
        nonlocal best_eval
        reporter.status("evaluating")
        with timer.phase("eval"):
            returns, lengths = evaluate_algorithm(algo, cfg)
        reporter.status("")
        mean, std = float(returns.mean()), float(returns.std())
        log(algo.env_steps, {"eval_return": mean, "eval_return_std": std, "eval_length": float(lengths.mean()),
                             **algo.eval_metrics()})
        if mean >= best_eval:
            best_eval = mean
            save(CHECKPOINT_BEST, mean)
        return mean, std

    start_step = algo.env_steps
    total = cfg.run.total_steps
    precision = autocast(resolve_device(cfg.run.device), cfg.run.precision)
    recent_returns: deque[float] = deque(maxlen=20)
    next_eval = (start_step // cfg.run.eval_every + 1) * cfg.run.eval_every if cfg.run.eval_every and \
        algo.evaluates else math.inf
    every_ckpt = cfg.run.checkpoint_every
    next_ckpt = (start_step // every_ckpt + 1) * every_ckpt if every_ckpt else math.inf
    start_time = last_flush = time.perf_counter()
    final_eval: tuple[float, float] | None = None
    reporter.start(str(run_dir), start_step, total)
    try:
        with InterruptFlag() as interrupt:
            while algo.env_steps < total:
                with precision:  # run.precision: bf16 autocast of the rollout's and update's forward passes
                    result = algo.iteration(timer)
                step = algo.env_steps
                bad = non_finite_quantity(algo, result.metrics)
                if distributed.any_rank(bad is not None):
                    raise diverged(step, bad or "another rank's loss or parameters hold NaN or Inf")
                values = dict(result.metrics)
                if result.episode_returns:
                    recent_returns.extend(result.episode_returns)
                    values["episode_return"] = float(np.mean(result.episode_returns))
                    values["episode_length"] = float(np.mean(result.episode_lengths))
                elapsed = time.perf_counter() - start_time
                values["steps_per_second"] = (step - start_step) / max(elapsed, 1e-9)
                values["wall_time"] = earlier_wall_time + elapsed  # s since the run began, across resumes
                log(step, values)
                if step >= next_eval and step < total:
                    evaluate_now()
                    next_eval += cfg.run.eval_every * max(1, (step - next_eval) // cfg.run.eval_every + 1)
                if step >= next_ckpt and step < total:
                    save(CHECKPOINT_LAST)
                    next_ckpt += every_ckpt * max(1, (step - next_ckpt) // every_ckpt + 1)
                now = time.perf_counter()
                if now - last_flush >= cfg.run.log_interval:
                    with timer.phase("storage"):
                        metrics.flush()
                    last_flush = now
                reporter.update(Progress(step, total, values["steps_per_second"],
                                         float(np.mean(recent_returns)) if recent_returns else None,
                                         elapsed, timer.shares(), result.metrics))
                for callback in callbacks or ():
                    callback(step)
                if distributed.any_rank(interrupt.set):
                    save(CHECKPOINT_LAST)
                    raise TrainingInterrupted(_result(run_dir, algo, start_step, start_time, None, timer, True))
            if algo.evaluates and (algo.env_steps > start_step or not (run_dir / CHECKPOINT_LAST).exists()):
                final_eval = evaluate_now()
            save(CHECKPOINT_LAST)
    except BaseException:
        with contextlib.suppress(Exception):  # the error on its way out says what went wrong, not this flush
            metrics.flush()
        raise
    else:
        with timer.phase("storage"):
            metrics.flush()
    finally:
        if tb is not None:
            tb.close()
        reporter.stop()
        algo.close()
        distributed.teardown()
    return _result(run_dir, algo, start_step, start_time, final_eval, timer, False)


def _result(run_dir: Path, algo: Algorithm, start_step: int, start_time: float,
            final_eval: tuple[float, float] | None, timer: PhaseTimer, interrupted: bool) -> TrainResult:
    wall = time.perf_counter() - start_time
    return TrainResult(run_dir, algo.env_steps, wall, (algo.env_steps - start_step) / max(wall, 1e-9),
                       final_eval[0] if final_eval else None, final_eval[1] if final_eval else None,
                       interrupted, dict(timer.totals))
