"""Progress reporting: what the training loop and the longer library calls report, and plain reporters.

Two interfaces, both silent by default (the library's default: a library call prints nothing):

- :class:`Reporter` follows a training run (env steps, speed, return or loss, phase shares);
- :class:`CountReporter` follows a count of things done (episodes played, shift levels evaluated, study runs
  finished), for the calls that are not training runs but still take minutes.

The rich live displays live in ``rlcli.cli.display``; the engine and the library only call these interfaces.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# learner metrics worth showing live when a run logs them (AD's distillation: cross-entropy and accuracy)
SHOWN_METRICS = {"loss": "loss {:.3f}", "accuracy": "acc {:.1%}"}


@dataclass
class Progress:
    step: int  # env steps (gradient steps for distillation) done, as logged: may pass total_steps
    total_steps: int
    steps_per_second: float
    recent_return: float | None
    elapsed: float
    phase_shares: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # the last iteration's learner metrics

    @property
    def shown_step(self) -> int:
        """The step a display shows: never past the total (the last iteration may overshoot it)."""
        return min(self.step, self.total_steps)

    @property
    def eta(self) -> float:
        left = max(0, self.total_steps - self.step)
        return left / self.steps_per_second if self.steps_per_second > 0 else float("inf")

    def learner_texts(self) -> list[str]:
        """The shown learner metrics this run logs, e.g. ``["loss 0.412", "acc 83.0%"]``."""
        return [text.format(self.metrics[k]) for k, text in SHOWN_METRICS.items() if k in self.metrics]


def start_line(run_dir: str) -> str:
    """What a reporter prints when a run starts: where its files go."""
    return f"{'writing' if Path(run_dir).suffix else 'run folder'} {run_dir}"


class Reporter:
    """Silent reporter (the library default). ``status(text)`` names what the loop is doing besides training
    (``"evaluating"``) until ``status("")``; a live display shows it, periodic lines need not."""

    def start(self, run_dir: str, start_step: int, total_steps: int) -> None: ...
    def update(self, progress: Progress) -> None: ...
    def status(self, text: str) -> None: ...
    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


class PlainReporter(Reporter):
    """One line every ``interval`` seconds, for logs and non-TTY output."""

    def __init__(self, interval: float = 5.0, stream=None):
        self.interval, self.stream = interval, stream or sys.stderr
        self._last = 0.0

    def start(self, run_dir: str, start_step: int, total_steps: int) -> None:
        self.message(start_line(run_dir))

    def update(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last < self.interval and p.step < p.total_steps:
            return
        self._last = now
        ret = f"{p.recent_return:.1f}" if p.recent_return is not None else "-"
        learner = "".join(f"  {t}" for t in p.learner_texts())
        shares = " ".join(f"{k} {v:.0%}" for k, v in p.phase_shares.items())
        print(f"step {p.shown_step}/{p.total_steps}  {p.steps_per_second:.0f} steps/s  return {ret}{learner}  "
              f"eta {p.eta:.0f}s  [{shares}]", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class CountReporter:
    """Progress of a count of things done; silent (the library default).

    ``start(description, total)``, then ``update(done, info)`` as often as convenient (reporters throttle
    their own output), then ``stop()``.
    """

    def start(self, description: str, total: int) -> None: ...
    def update(self, done: int, info: str = "") -> None: ...
    def stop(self) -> None: ...


class PlainCountReporter(CountReporter):
    """A line every ``interval`` seconds while the count runs (none for calls shorter than that)."""

    def __init__(self, interval: float = 10.0, stream=None):
        self.interval, self.stream = interval, stream or sys.stderr
        self.description, self.total = "", 0
        self._last = 0.0

    def start(self, description: str, total: int) -> None:
        self.description, self.total = description, total
        self._last = time.monotonic()

    def update(self, done: int, info: str = "") -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        print(f"{self.description}: {min(done, self.total)}/{self.total}" + (f"  {info}" if info else ""),
              file=self.stream, flush=True)
