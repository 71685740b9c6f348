"""Progress reporting of the training loop: what it reports and the plain (non-TTY) reporter.

The rich live display lives in ``rlcli.cli.display``; the engine only calls the reporter interface.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    step: int
    total_steps: int
    steps_per_second: float
    recent_return: float | None
    elapsed: float
    phase_shares: dict[str, float] = field(default_factory=dict)

    @property
    def eta(self) -> float:
        left = max(0, self.total_steps - self.step)
        return left / self.steps_per_second if self.steps_per_second > 0 else float("inf")


class Reporter:
    """Silent reporter (the library default)."""

    def start(self, run_dir: str, start_step: int, total_steps: int) -> None: ...
    def update(self, progress: Progress) -> None: ...
    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


class PlainReporter(Reporter):
    """One line every ``interval`` seconds, for logs and non-TTY output."""

    def __init__(self, interval: float = 5.0, stream=None):
        self.interval, self.stream = interval, stream or sys.stderr
        self._last = 0.0

    def update(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last < self.interval and p.step < p.total_steps:
            return
        self._last = now
        ret = f"{p.recent_return:.1f}" if p.recent_return is not None else "-"
        shares = " ".join(f"{k} {v:.0%}" for k, v in p.phase_shares.items())
        print(f"step {p.step}/{p.total_steps}  {p.steps_per_second:.0f} steps/s  return {ret}  "
              f"eta {p.eta:.0f}s  [{shares}]", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
