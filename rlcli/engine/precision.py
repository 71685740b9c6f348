"""``run.precision`` and ``run.compile``: bf16 autocast around a learner's iterations, torch.compile of its nets.

The training loop runs every :meth:`~rlcli.engine.algorithm.Algorithm.iteration` (rollout and update) inside
:func:`autocast`, so each learner's forward passes -- the AD transformer, the ViT and CNN policies, the MLPs --
run in bfloat16 where torch's autocast lists say it is safe (matmuls, convolutions) while parameters,
gradients and optimizer state stay float32. :func:`compile_networks` compiles every network an algorithm
holds in place (``nn.Module.compile``: the module, its parameters and its state_dict keys stay the same, so
checkpoints are unchanged). Nothing here imports ``torch._dynamo`` unless ``run.compile`` is true: the import
costs about a second of CPU per process.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The context of a learner's forward passes: bf16 autocast on ``device``'s type, or nothing (fp32)."""
    if precision == "fp32":
        return nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")


def networks(algo: object) -> list[nn.Module]:
    """The top-level networks an algorithm holds as attributes (policy, model, q-network, RND nets...)."""
    seen: list[nn.Module] = []
    for value in vars(algo).values():
        if isinstance(value, nn.Module) and not any(value is m for m in seen):
            seen.append(value)
    return seen


def compile_networks(algo: object) -> int:
    """``torch.compile`` every network of ``algo`` in place; returns how many."""
    nets = networks(algo)
    for net in nets:
        net.compile()
    return len(nets)
