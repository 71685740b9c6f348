"""Phase timing: where the wall time of a run goes (env, inference, learning, storage)."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

PHASES = ("env", "inference", "learning", "storage")


class PhaseTimer:
    """Accumulates wall seconds per named phase. ``annotate`` also marks each phase as a torch.profiler range."""

    def __init__(self, annotate: bool = False) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.annotate = annotate

    @contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            if self.annotate:
                from torch.profiler import record_function

                with record_function(f"phase/{name}"):
                    yield
            else:
                yield
        finally:
            self.totals[name] += time.perf_counter() - start

    def shares(self) -> dict[str, float]:
        total = sum(self.totals.values()) or 1.0
        return {k: v / total for k, v in self.totals.items()}
