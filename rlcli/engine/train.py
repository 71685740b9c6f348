"""The one training loop: ``rlcli.train(cfg)``.

It drives any :class:`~rlcli.engine.algorithm.Algorithm` and owns what they all share: the run folder,
``config.toml``, metrics.h5 (and TensorBoard), periodic and best checkpoints, evaluation, progress,
Ctrl-C (finish the iteration, save, stop) and resume (``train(cfg, resume=run_dir)``).
"""

from __future__ import annotations

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
from rlcli.engine.progress import Progress, Reporter
from rlcli.engine.seeding import resolve_device, seed_everything
from rlcli.engine.signals import InterruptFlag
from rlcli.engine.timing import SETUP, PhaseTimer
from rlcli.storage.checkpoint import load_checkpoint, save_checkpoint
from rlcli.storage.metrics import MetricsWriter
from rlcli.storage.runs import CHECKPOINT_BEST, CHECKPOINT_LAST, write_config


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
        ckpt = load_checkpoint(run_dir / CHECKPOINT_LAST)  # before anything is written
        if ckpt.attrs.get("algo") != cfg.algo:
            raise ConfigError(f"'{run_dir}' holds a '{ckpt.attrs.get('algo')}' run, not '{cfg.algo}'")
    else:
        ckpt = None
        name = distributed.broadcast_object(
            Path(run_dir).name if run_dir is not None else cfg.run.name or default_run_name(cfg))
        cfg.run.name = name
        run_dir = Path(run_dir) if run_dir is not None else Path(cfg.run.runs_dir) / name
        if distributed.broadcast_object(run_dir.exists() and any(run_dir.iterdir())):  # rank 0's view
            raise ConfigError(f"run folder '{run_dir}' already exists; pick another --name or --resume it")

    with timer.phase(SETUP):  # building envs and networks, restoring a checkpoint
        algo = build_algorithm(distributed.rank_config(cfg), algorithm)
        distributed.prepare(algo)
        metrics = (MetricsWriter(run_dir / "metrics.h5",
                                 truncate_after_step=int(ckpt.attrs["step"]) if ckpt is not None else None)
                   if main else distributed.NoMetrics())
        if ckpt is not None:
            algo.load_state(distributed.checkpoint_for_rank(ckpt))
        if main:
            write_config(run_dir, cfg)
        tb = None
        if cfg.run.tensorboard and main:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(run_dir / "tb"))

    best_eval = float(ckpt.attrs.get("best_eval_return", -math.inf)) if ckpt is not None else -math.inf
    earlier_wall_time = float(ckpt.attrs.get("wall_time", 0.0)) if ckpt is not None else 0.0  # s, runs resumed from

    def save(name: str, eval_return: float | None = None) -> None:
        with timer.phase("storage"):
            state = distributed.gather_state(*algo.state())  # None on ranks other than 0: rank 0 writes
            if state is not None:
                tensors, documents = state
                attrs = {"algo": cfg.algo, "config": cfg.to_toml(), "step": algo.env_steps,
                         "best_eval_return": best_eval,
                         "wall_time": earlier_wall_time + time.perf_counter() - start_time}
                if eval_return is not None:
                    attrs["eval_return"] = eval_return
                save_checkpoint(run_dir / name, tensors, attrs, documents)
            distributed.barrier()  # the checkpoint is on disk before any rank goes on (and may resume from it)

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
                result = algo.iteration(timer)
                step = algo.env_steps
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
    finally:
        with timer.phase("storage"):
            metrics.flush()
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
