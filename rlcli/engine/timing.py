"""Phase timing: where the wall time of a run goes (env, inference, learning, storage)."""

from __future__ import annotations

import time
from collections import defaultdict

PHASES = ("env", "inference", "learning", "storage")
# one-off work before the loop (building envs and networks, restoring a checkpoint): timed, so that
# ``rlcli profile`` can show it, but not a share of the loop's time (it would dominate every short run)
SETUP = "setup"


class _Phase:
    """``with timer.phase(name):`` adds the block's wall seconds to ``timer.totals[name]``.

    A plain class, one per name and reused, instead of a generator context manager: the collector enters
    two phases per env step, and creating a generator each time cost ~10% of a CartPole PPO rollout.
    """

    __slots__ = ("timer", "name", "open")

    def __init__(self, timer: PhaseTimer, name: str):
        self.timer, self.name = timer, name
        self.open: list = []  # (start time, torch.profiler range or None), a stack: the same phase may nest

    def __enter__(self) -> None:
        record = None
        if self.timer.annotate:  # a named range in torch.profiler traces (rlcli profile --trace)
            from torch.profiler import record_function

            record = record_function(f"phase/{self.name}")
            record.__enter__()
        self.open.append((time.perf_counter(), record))

    def __exit__(self, *exc) -> None:
        start, record = self.open.pop()
        self.timer.totals[self.name] += time.perf_counter() - start
        if record is not None:
            record.__exit__(*exc)


class PhaseTimer:
    """Accumulates wall seconds per named phase. ``annotate`` also marks each phase as a torch.profiler range."""

    def __init__(self, annotate: bool = False) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.annotate = annotate
        self._phases: dict[str, _Phase] = {}

    def phase(self, name: str) -> _Phase:
        phase = self._phases.get(name)
        if phase is None:
            phase = self._phases[name] = _Phase(self, name)
        return phase

    def shares(self) -> dict[str, float]:
        """Each phase's share of the time spent in the loop's phases, largest first; setup is not one."""
        loop = {k: v for k, v in self.totals.items() if k != SETUP}
        total = sum(loop.values()) or 1.0
        return {k: v / total for k, v in sorted(loop.items(), key=lambda kv: -kv[1])}
