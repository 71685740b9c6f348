"""Data-parallel learners under ``torchrun``: PPO, VAPOR, RND and AD on N processes, one gradient.

``torchrun --nproc-per-node N -m rlcli train ppo ...`` starts N copies of the same command; torchrun sets
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, and :func:`setup` joins them into one process
group (gloo on the CPU, nccl on CUDA, one GPU per local rank). Then

- every rank builds its own envs with its own seed (rank 0 keeps ``run.seed``, so its stream is the one a
  single process would see), and rank 0's initial parameters are broadcast to all;
- each minibatch's gradients are averaged over the ranks before the gradient clip (:func:`average_gradients`),
  and the advantages are normalised with the mean and std of the global minibatch
  (:func:`normalize_advantages`): one update on N ranks is one update on the concatenated batch;
- running observation and reward statistics (:class:`~rlcli.engine.normalization.RunningMeanStd`) absorb
  every rank's samples;
- ``run.total_steps`` counts the env steps of all ranks together;
- AD distillation (``rlcli distill``): each rank draws its own windows (its sampler seeded like its envs
  would be), the masked-token loss is normalised by the token count of all ranks (:func:`sum_over_ranks`)
  so the averaged gradient is exactly the concatenated batch's, the in-context evaluation runs on rank 0
  and its result is broadcast; ``run.total_steps`` counts gradient steps, each on every rank's
  ``ad.batch_size`` windows;
- rank 0 alone writes the run folder (config, metrics, checkpoints); a checkpoint holds every rank's state
  (envs, RNG) under ``ranks/<r>``, so resuming with the same number of ranks continues exactly.

Without torchrun (WORLD_SIZE unset or 1) nothing here does anything and nothing is imported from
``torch.distributed`` beyond the module itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from rlcli.config.fields import ConfigError

RANK_SEED_OFFSET = 1_000_003  # rank r's envs and sampling use run.seed + r * this: streams never overlap
DATA_PARALLEL_ALGOS = ("ppo", "vapor", "rnd", "ad")


@dataclass(frozen=True)
class Group:
    rank: int
    world_size: int
    local_rank: int
    owned: bool = True  # setup() initialised torch.distributed (not its caller)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_group: Group | None = None


def current() -> Group | None:
    """The process group this process trains in, or None (a single process)."""
    return _group


def world_size() -> int:
    return _group.world_size if _group is not None else 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(algo: str, device: str) -> Group | None:
    """Join the torchrun process group (None when not launched by torchrun with more than one process).

    Raises ConfigError for a learner that does not train data-parallel."""
    global _group
    if not launched_by_torchrun():
        return None
    if algo not in DATA_PARALLEL_ALGOS:
        raise ConfigError(f"torchrun runs {', '.join(DATA_PARALLEL_ALGOS)} data-parallel; '{algo}' trains in "
                          f"one process (run it without torchrun)")
    if _group is not None:
        return _group
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local_rank)  # "cuda" below means this rank's own GPU
    owned = not dist.is_initialized()  # a caller that set up the group itself also takes it down
    if owned:
        dist.init_process_group("nccl" if cuda else "gloo")
    _group = Group(dist.get_rank(), dist.get_world_size(), local_rank, owned)
    return _group


def teardown() -> None:
    """Leave the process group (when :func:`setup` joined it) at the end of a training run."""
    global _group
    if _group is not None and _group.owned and dist.is_initialized():
        dist.destroy_process_group()
    _group = None


def rank_seed(seed: int) -> int:
    """This rank's seed for envs and sampling (rank 0: ``seed`` itself)."""
    return seed + (_group.rank * RANK_SEED_OFFSET if _group is not None else 0)


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if _group is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _group is not None:
        dist.barrier()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any (Ctrl-C reaches the ranks at different iterations,
    yet all must stop after the same one)."""
    if _group is None:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over the ranks (a copy; ``values`` itself without torchrun)."""
    if _group is None:
        return values
    total = values.detach().clone()
    dist.all_reduce(total)
    return total


def _device_of(tensors: list[torch.Tensor]) -> torch.device:
    return tensors[0].device if tensors else torch.device("cpu")


def broadcast_modules(modules: Iterable[torch.nn.Module]) -> None:
    """Rank 0's parameters and buffers on every rank (each rank initialised its nets from its own seed)."""
    if _group is None:
        return
    for module in modules:
        for t in module.state_dict().values():
            if isinstance(t, torch.Tensor):
                dist.broadcast(t.data if t.is_floating_point() else t, src=0)


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Average the gradients of ``params`` over the ranks, in one all-reduce (a parameter no loss reached
    gets a zero gradient, so every rank reduces the same buffer)."""
    if _group is None:
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= _group.world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def normalize_advantages(advantages: torch.Tensor) -> torch.Tensor:
    """(a - mean) / (std + 1e-8), mean and (unbiased) std over the global minibatch: every rank's rows."""
    if _group is None:
        return (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    a = advantages.detach().to(torch.float64)
    moments = torch.stack([a.sum(), (a * a).sum(), torch.tensor(float(a.numel()), dtype=torch.float64,
                                                               device=a.device)])
    dist.all_reduce(moments)
    total, squares, n = moments.unbind()
    mean = total / n
    var = (squares - n * mean * mean) / (n - 1).clamp_min(1)
    return (advantages - mean.to(advantages.dtype)) / (var.clamp_min(0).sqrt().to(advantages.dtype) + 1e-8)


def merge_running_stats(algo: Any) -> None:
    """Make every :class:`RunningMeanStd` of ``algo`` absorb all ranks' samples on each update.

    The learner's code stays single-process: its statistics objects get an ``update`` that first combines
    the batch moments of all ranks (sums in float64, identical on every rank)."""
    from rlcli.engine.normalization import RunningMeanStd

    if _group is None:
        return
    for rms in vars(algo).values():
        if not isinstance(rms, RunningMeanStd):
            continue

        def update(x: torch.Tensor, rms: RunningMeanStd = rms) -> None:
            x = x.to(torch.float64)
            n = torch.tensor([float(x.shape[0])], dtype=torch.float64, device=x.device)
            sums = torch.cat([n, x.sum(0).reshape(-1), (x * x).sum(0).reshape(-1)])
            dist.all_reduce(sums)
            count = sums[0]
            mean = (sums[1:1 + rms.mean.numel()] / count).reshape(rms.mean.shape)
            var = (sums[1 + rms.mean.numel():] / count).reshape(rms.mean.shape) - mean * mean
            rms.update_from_moments(mean, var.clamp_min(0), int(count.item()))

        rms.update = update


def prepare(algo: Any) -> None:
    """After the learner is built on every rank: the same initial weights, merged statistics."""
    if _group is None:
        return
    broadcast_modules(v for v in vars(algo).values() if isinstance(v, torch.nn.Module))
    merge_running_stats(algo)


# -- checkpoints -----------------------------------------------------------------------------------------
def gather_state(tensors: dict[str, Any], documents: dict[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Every rank's (tensors, documents) on rank 0, rank r's under ``ranks/<r>`` beside rank 0's own; None
    on the other ranks (they write nothing)."""
    if _group is None:
        return tensors, documents
    states: list[Any] = [None] * _group.world_size
    cpu = _to_cpu(tensors)
    dist.gather_object((cpu, documents), states if _group.is_main else None, dst=0)
    if not _group.is_main:
        return None
    ranks_t = {str(r): s[0] for r, s in enumerate(states) if r > 0}
    ranks_d = {str(r): s[1] for r, s in enumerate(states) if r > 0}
    return {**tensors, "ranks": ranks_t}, {**documents, "ranks": ranks_d, "world_size": _group.world_size}


def _to_cpu(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        return {k: _to_cpu(v) for k, v in tree.items()}
    return tree


class RankCheckpoint:
    """Rank r's view of a data-parallel checkpoint: its own tensors and documents, the shared attrs."""

    def __init__(self, ckpt: Any, rank: int):
        self.base, self.prefix = ckpt, f"ranks/{rank}/"
        self.path, self.attrs = ckpt.path, ckpt.attrs
        self.documents = ckpt.documents["ranks"][str(rank)]

    def has(self, group: str) -> bool:
        return self.base.has(self.prefix + group)

    def tensors(self, group: str) -> dict[str, Any]:
        return self.base.tensors(self.prefix + group)


def checkpoint_for_rank(ckpt: Any) -> Any:
    """The part of ``ckpt`` this rank restores from; ConfigError when it was saved by another number of
    ranks (each rank's envs and RNG are in it, so the count must match for an exact resume)."""
    saved = int(ckpt.documents.get("world_size", 1))
    if saved != world_size():
        raise ConfigError(f"'{ckpt.path}' was saved by {saved} process(es); resume it with "
                          f"{'torchrun --nproc-per-node ' + str(saved) if saved > 1 else 'one process'}")
    if _group is None or _group.is_main:
        return ckpt
    return RankCheckpoint(ckpt, _group.rank)


def rank_config(cfg: Any) -> Any:
    """``cfg`` for building this rank's learner: its own ``run.seed`` (rank 0 and a single process: ``cfg``
    itself, so the run's config keeps the seed it was given)."""
    if _group is None or _group.is_main:
        return cfg
    import copy

    mine = copy.deepcopy(cfg)
    mine.run.seed = rank_seed(cfg.run.seed)
    return mine


class NoMetrics:
    """The metrics writer of ranks other than 0: they log nothing."""

    def log(self, step: int, **values: float) -> None: ...

    def flush(self, wait: float = 10.0) -> None: ...
