"""Training windows of Algorithm Distillation: which (history, start) pairs to draw, and reading them.

A window is ``length`` consecutive transitions of one history -- never across two histories. A history
shorter than ``length`` is one window of all its transitions, right-padded to ``length`` with a mask
(:func:`read_windows`): the transformer is causal, so the padding after the last real transition cannot
change the model's outputs at the real positions, and the loss leaves the padded positions out.
"""

from __future__ import annotations

import numpy as np

from rlcli.config.fields import ConfigError
from rlcli.storage.histories import FIELDS, HistoryReader


def window_counts(lengths: list[int], length: int) -> np.ndarray:
    """Windows per history: every start of a full window, or one (padded) window for a shorter history."""
    n = np.asarray(lengths, dtype=np.int64)
    return np.where(n >= length, n - length + 1, (n > 0).astype(np.int64))


class WindowSampler:
    """Uniform samples of (history, start) over every window of ``length`` of the histories.

    With ``success_fraction`` > 0 that share of each batch is drawn uniformly from the windows that end after
    their history's first reward (``first_success[i]``: where history i's part after it begins), so the
    model sees more of the source acting on what it has found; the rest stays uniform over all windows.
    """

    def __init__(self, lengths: list[int], indices: list[int], length: int, seed: int,
                 first_success: list[int] | None = None, success_fraction: float = 0.0):
        counts = window_counts(lengths, length)
        if counts.sum() == 0:
            raise ConfigError("the training histories hold no transitions; collect longer histories")
        self.indices, self.counts, self.length = np.asarray(indices), counts, length
        self.cum = np.cumsum(counts)
        self.rng = np.random.default_rng(seed)
        self.success_fraction = success_fraction if first_success is not None else 0.0
        if self.success_fraction > 0:
            # windows whose last transition comes after the history's first reward:
            # start + min(length, n) - 1 >= first
            span = np.minimum(length, np.asarray(lengths, dtype=np.int64))
            self.success_lo = np.maximum(0, np.asarray(first_success) - span + 1)
            self.success_counts = np.maximum(0, counts - self.success_lo)
            self.success_cum = np.cumsum(self.success_counts)
            if self.success_cum[-1] == 0:
                self.success_fraction = 0.0

    @staticmethod
    def _pick(cum: np.ndarray, counts: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        which = np.searchsorted(cum, flat, side="right")
        return which, flat - (cum[which] - counts[which])

    def sample(self, batch: int) -> list[tuple[int, int]]:
        n_success = int(self.rng.binomial(batch, self.success_fraction)) if self.success_fraction > 0 else 0
        which, starts = self._pick(self.cum, self.counts, self.rng.integers(0, self.cum[-1], size=batch - n_success))
        if n_success:
            w2, s2 = self._pick(self.success_cum, self.success_counts,
                                self.rng.integers(0, self.success_cum[-1], size=n_success))
            which, starts = np.concatenate([which, w2]), np.concatenate([starts, s2 + self.success_lo[w2]])
        return [(int(self.indices[w]), int(s)) for w, s in zip(which, starts, strict=True)]

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def read_windows(reader: HistoryReader, picks: list[tuple[int, int]], length: int,
                 usable: dict[int, int] | None = None) -> dict[str, np.ndarray]:
    """The windows ``[(history index, start), ...]``: each field as an (N, length) array, plus ``mask``
    (N, length) bool, false on the padding after the end of a history shorter than ``length``.
    ``usable`` (history index -> transitions) cuts histories shorter than they are in the file."""
    def size(index: int) -> int:
        n = reader.histories[index].length
        return min(n, usable.get(index, n)) if usable else n

    full = [(i, s) for i, s in picks if size(i) >= s + length]
    if len(full) == len(picks):
        out = reader.windows(picks, length)
        out["mask"] = np.ones((len(picks), length), dtype=bool)
        return out
    out = {name: np.zeros((len(picks), length), dtype=dtype) for name, dtype in FIELDS.items()}
    out["mask"] = np.zeros((len(picks), length), dtype=bool)
    for row, (index, start) in enumerate(picks):
        n = min(length, size(index) - start)
        if n <= 0:
            raise IndexError(f"window start {start} is outside history {index}")
        for name, values in reader.window(index, start, n).items():
            out[name][row, :n] = values
        out["mask"][row, :n] = True
    return out
