"""``rlcli.profile(cfg)``: where the time of a training run goes.

It runs a real (short) training run with a :class:`PhaseTimer` and reports seconds per phase: ``env``
(stepping the vectorized envs), ``inference`` (policy forward passes during rollouts), ``learning`` (the
update), ``storage`` (metrics, checkpoints) and ``eval``; ``other`` is the loop's own overhead (the wall time
not inside any phase). With ``trace_dir``, torch.profiler records a few iterations (after a wait and a
warm-up iteration) with each phase annotated, and writes a Chrome/TensorBoard trace there.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rlcli.config.schema import Config
from rlcli.engine.timing import PhaseTimer


@dataclass
class ProfileResult:
    steps: int  # env steps trained
    wall_time: float  # s
    steps_per_second: float
    phase_seconds: dict[str, float]  # phase -> s, including "other"
    trace_files: list[Path] = field(default_factory=list)
    top_ops: str = ""  # torch.profiler's table of the most expensive ops, when traced

    def rows(self) -> list[tuple[str, float, float, float]]:
        """(phase, seconds, share of wall time, microseconds per env step), largest first."""
        out = [(name, s, s / max(self.wall_time, 1e-9), 1e6 * s / max(self.steps, 1))
               for name, s in self.phase_seconds.items()]
        return sorted(out, key=lambda r: -r[1])


def profile(cfg: Config, trace_dir: str | Path | None = None, trace_iterations: int = 3,
            keep_run: bool = False) -> ProfileResult:
    """Train ``cfg`` and time each phase; the run folder goes to a temporary directory unless ``keep_run``."""
    from rlcli.engine.train import train

    cfg = cfg.copy()
    timer = PhaseTimer()
    callbacks = []
    with ExitStack() as stack:
        if not keep_run:
            cfg.run.runs_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="rlcli-profile-"))
            cfg.run.name = cfg.run.name or "profile"
        prof = None
        if trace_dir is not None:
            import torch.profiler as tp

            trace_dir = Path(trace_dir)
            trace_dir.mkdir(parents=True, exist_ok=True)
            prof = stack.enter_context(tp.profile(
                activities=[tp.ProfilerActivity.CPU] + ([tp.ProfilerActivity.CUDA] if _cuda() else []),
                schedule=tp.schedule(wait=1, warmup=1, active=trace_iterations, repeat=1),
                on_trace_ready=tp.tensorboard_trace_handler(str(trace_dir)),
                record_shapes=True))
            timer.annotate = True  # phases appear as named ranges in the trace
            callbacks.append(lambda step: _quietly(prof.step))
        start = time.perf_counter()
        result = train(cfg, timer=timer, callbacks=callbacks)
        wall = time.perf_counter() - start
    phases = dict(timer.totals)
    phases["other"] = max(0.0, wall - sum(phases.values()))
    out = ProfileResult(result.steps, wall, result.steps / max(wall, 1e-9), phases)
    if prof is not None:
        out.trace_files = sorted(Path(trace_dir).glob("*.json*"))
        try:
            out.top_ops = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
        except (AssertionError, RuntimeError):  # fewer iterations than the schedule's active window
            out.top_ops = ""
    return out


@contextmanager
def _stderr_silenced():
    """File descriptor 2 goes to /dev/null for the block: torch's kineto writes "USDT: ... profiler_start"
    and "profiler_stop" lines to it from C++, below Python's sys.stderr, and they say nothing to a user."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quietly(call) -> None:
    with _stderr_silenced():
        call()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
