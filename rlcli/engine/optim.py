"""Adam and AdamW on torch's fused kernel, without ``torch.optim``.

:class:`FusedAdam` makes the same update as ``torch.optim.Adam(fused=True)`` (``AdamW`` with
``decoupled_weight_decay=True``), bit for bit: it calls the same kernel, ``torch._fused_adam_``, with the
same state. Why not torch's class: building or stepping any ``torch.optim.Optimizer`` imports
``torch._dynamo`` (its methods are wrapped to keep the compiler out), which costs about a second of CPU
per process -- more than everything else before a run's first env step, torch's own import aside. rlcli
never compiles, so the learners build this one.

``state_dict()`` and ``load_state_dict()`` use torch's format (``{"state": {index: {"step", "exp_avg",
"exp_avg_sq"}}, "param_groups": [...]}``), so checkpoints written with either load into either.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class FusedAdam:
    """Parameter groups as torch's (``add_param_group`` adds one with the first group's settings);
    ``param_groups[i]["lr"]`` may be changed between steps (schedules do)."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled_weight_decay: bool = False):
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        self.param_groups: list[dict[str, Any]] = [{
            "params": params, "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
            "amsgrad": False, "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
            "fused": True, "decoupled_weight_decay": decoupled_weight_decay}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def add_param_group(self, group: dict[str, Any]) -> None:
        """A further group (RND's predictor): its own ``params``, other settings as the first group's."""
        params = list(group["params"])
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        self.param_groups.append({**self.param_groups[0], **group, "params": params})

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            self._step_group(group)

    def _step_group(self, group: dict[str, Any]) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        for p in params:
            if p not in self.state:  # as torch initialises it: a float32 step on the parameter's device
                self.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                 "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                 "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        states = [self.state[p] for p in params]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        beta1, beta2 = group["betas"]
        kernel(params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
               [], steps, amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2,
               weight_decay=group["weight_decay"], eps=group["eps"], maximize=False, grad_scale=None,
               found_inf=None)

    def _all_params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, Any]:
        """torch's layout: parameters numbered consecutively across groups."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": list(range(start, start + n))})
            start += n
        return {"state": {index[id(p)]: dict(s) for p, s in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"]) for s, g in zip(saved, self.param_groups, strict=True)):
            raise ValueError("the saved optimizer state belongs to other parameters")
        for group, saved_group in zip(self.param_groups, saved, strict=True):
            for key in ("lr", "eps", "weight_decay"):
                group[key] = saved_group.get(key, group[key])
            group["betas"] = tuple(saved_group.get("betas", group["betas"]))
        self.state = {}
        params = self._all_params()
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            self.state[p] = {"step": torch.as_tensor(s["step"], dtype=torch.float32).to(p.device).reshape(()),
                             "exp_avg": s["exp_avg"].to(p.device, p.dtype).clone(),
                             "exp_avg_sq": s["exp_avg_sq"].to(p.device, p.dtype).clone()}
