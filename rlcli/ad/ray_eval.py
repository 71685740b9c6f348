"""The in-context evaluation split across Ray tasks: ``rlcli eval AD_RUN --ray auto|ADDRESS``.

The runs (tasks x repeats, task-major) are cut into one contiguous share per CPU of the cluster; each Ray
task loads the checkpoint and plays its share with :func:`~rlcli.ad.in_context.run_in_context`, every run
sampling from its own seed (:func:`~rlcli.ad.evaluate.run_seeds`), so the joined rollout holds the returns
of the local evaluation with the same seed. The checkpoint is read by path on the workers: on a multi-node
cluster it must be on storage every node sees.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from rlcli.ad.in_context import InContextRollout

MAX_RETRIES = 2  # a share whose node died is played again elsewhere (it has no state to lose)


def play_share(checkpoint: str, tasks: list[int], seeds: list[int], episodes: int,
               temperature: float = 1.0) -> InContextRollout:
    """One Ray task: the rows ``tasks`` (with their ``seeds``) of the evaluation of ``checkpoint``."""
    import torch

    from rlcli.ad.distill import load_ad_model
    from rlcli.ad.in_context import run_in_context
    from rlcli.storage.checkpoint import load_checkpoint

    torch.set_num_threads(1)  # one CPU per share, as the task asks of Ray
    model, _, env_params, _ = load_ad_model(load_checkpoint(checkpoint))
    return run_in_context(model, tasks, episodes, env_params, row_seeds=seeds, temperature=temperature)


def share_rows(runs: int, shares: int) -> list[range]:
    """``runs`` rows cut into ``shares`` contiguous blocks, the larger ones last."""
    bounds = np.linspace(0, runs, shares + 1).astype(int)
    return [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def join_rollouts(parts: list[InContextRollout]) -> InContextRollout:
    """The shares' rows stacked in order; the per-step records padded to the longest share (a share stops
    when its own rows are done, the whole batch when all rows are)."""
    steps = max(p.cells.shape[1] for p in parts)

    def pad(a: np.ndarray) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, steps - a.shape[1])))

    return InContextRollout([t for p in parts for t in p.tasks], np.concatenate([p.returns for p in parts]),
                            np.concatenate([p.lengths for p in parts]), np.concatenate([pad(p.cells) for p in parts]),
                            np.concatenate([pad(p.dones) for p in parts]))


def run_in_context_on_ray(address: str, checkpoint: str | Path, tasks: list[int], seeds: list[int], episodes: int,
                          on_finished: Callable[[int], None] | None = None,
                          temperature: float = 1.0) -> InContextRollout:
    """The rollout of ``run_in_context(model, tasks, episodes, row_seeds=seeds)`` played in shares on the
    Ray cluster at ``address`` ("auto" or an address); ``on_finished`` gets the episodes of the finished
    shares."""
    from rlcli.ad.shards import _connect
    from rlcli.study.ray_backend import _import_ray

    connected = _import_ray().is_initialized()  # a caller's own connection is left open
    ray = _connect(address)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        blocks = share_rows(len(tasks), max(1, min(len(tasks), cpus)))
        task = ray.remote(max_retries=MAX_RETRIES)(play_share).options(num_cpus=1)
        refs = {task.remote(str(checkpoint), [tasks[i] for i in rows], [seeds[i] for i in rows], episodes,
                            temperature): k
                for k, rows in enumerate(blocks)}
        parts: list[InContextRollout | None] = [None] * len(blocks)
        pending, done_runs = list(refs), 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            k = refs[ready[0]]
            parts[k] = ray.get(ready[0])
            done_runs += len(blocks[k])
            if on_finished is not None:
                on_finished(done_runs * episodes)
    except ray.exceptions.RayError as e:
        raise OSError(f"the Ray evaluation failed: {str(e).splitlines()[0]}") from None
    finally:
        if not connected:
            ray.shutdown()
    return join_rollouts([p for p in parts if p is not None])
