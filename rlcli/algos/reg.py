"""The ``reg`` technique: an L2 penalty on the parameters, added to the learner's loss.

With ``reg`` in ``run.technique`` every gradient update minimises ``loss + 0.5 * run.reg_coef * ||theta||^2``
over the trained network's parameters theta (weights and biases), so the penalty's gradient is
``run.reg_coef * theta``: a coupled weight decay that goes through Adam's normalisation and the gradient clip
with the rest of the gradient. PPO and VAPOR apply it per minibatch, DQN per gradient step (after the GAR
combination with ``gar+reg``: the penalty is not one of the levels' losses), ES adds the penalty's gradient to
its update direction in OpenAI ES's units (``l2coeff = run.reg_coef``, rlcli.algos.es).

Earlier versions used AdamW's decoupled decay of 1e-4, which moved each parameter by lr x 1e-4 (about 3e-8)
per step: no measurable effect on the parameter norm or the returns.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def uses_reg(cfg) -> bool:
    return "reg" in cfg.run.techniques


def reg_coefficient(cfg) -> float:
    """``run.reg_coef`` when the technique includes reg, else 0 (no penalty)."""
    return float(cfg.run.reg_coef) if uses_reg(cfg) else 0.0


def l2_penalty(params: Iterable[torch.Tensor], coef: float) -> torch.Tensor:
    """0.5 * coef * sum of squared entries of ``params`` (a 0-d tensor with a graph)."""
    return 0.5 * coef * sum(p.pow(2).sum() for p in params)


def backward_l2_penalty(params: Iterable[torch.Tensor], coef: float) -> torch.Tensor:
    """Add the gradient of :func:`l2_penalty` to ``params``' ``.grad`` (after the loss's backward or a GAR
    combination wrote theirs); returns the penalty, detached, for logging."""
    penalty = l2_penalty(params, coef)
    penalty.backward()
    return penalty.detach()
