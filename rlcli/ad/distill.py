"""Algorithm Distillation (Laskin et al. 2022): a causal transformer trained on learning histories.

``rlcli distill darkroom --histories data.h5`` trains :class:`~rlcli.nets.ad_transformer.ADTransformer` to
predict the source agents' next action from windows of ``ad.context_len`` consecutive transitions of their
learning histories (training tasks only), drawn by :class:`~rlcli.ad.windows.WindowSampler` (never across
two histories; a history shorter than the context is one padded window) and read from the HDF5 file without
loading whole histories. It runs in the one training loop (:func:`rlcli.engine.train.train`): one iteration
is one gradient step (``run.total_steps`` counts gradient steps), and the loop's evaluation -- which also
picks ``best.h5`` -- is the in-context evaluation on the validation tasks (``eval_return`` = mean return of
the last ``ad.eval_last`` of ``ad.eval_episodes`` episodes). The test tasks are left to
``rlcli eval RUN --tasks test``. Under ``torchrun`` it trains data-parallel (see
:mod:`rlcli.engine.distributed`): ``ad.batch_size`` windows per rank and gradient step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlcli.ad.windows import WindowSampler, read_windows
from rlcli.config.fields import ConfigError
from rlcli.config.schema import Config
from rlcli.engine import distributed
from rlcli.engine.algorithm import Algorithm, IterationResult, load_rng_state, rng_state
from rlcli.engine.grad_clip import clip_grad_norm
from rlcli.engine.seeding import EVAL_SEED_OFFSET
from rlcli.engine.timing import PhaseTimer
from rlcli.nets.ad_transformer import ADModelConfig, ADTransformer
from rlcli.storage.checkpoint import Checkpoint, optimizer_from_tree, optimizer_to_tree
from rlcli.storage.histories import HistoryReader


def model_config(cfg: Config, env_params: dict) -> ADModelConfig:
    a = cfg.ad
    return ADModelConfig(num_states=env_params["num_states"], num_actions=env_params["num_actions"],
                         max_time_step=env_params["max_steps"], context_len=a.context_len, embed_dim=a.embed_dim,
                         num_layers=a.num_layers, num_heads=a.num_heads, ff_dim=a.ff_dim,
                         attention_dropout=a.attention_dropout, residual_dropout=a.residual_dropout,
                         embedding_dropout=a.embedding_dropout, positions=a.positions,
                         state_encoding=a.state_encoding, grid_size=env_params["size"], next_state=a.next_state)


def cosine_lr(step: int, total: int, peak: float, floor: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to ``floor`` at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


class AD(Algorithm):
    def __init__(self, cfg: Config, device: torch.device):
        self.cfg, self.device = cfg, device
        a = cfg.ad
        if not a.histories:
            raise ConfigError("distill needs the learning histories: --histories data.h5 (ad.histories)")
        self.reader = HistoryReader(a.histories)
        self.env_params = self.reader.env_params
        self.tasks = {"train": self.reader.train_tasks, "validation": self.reader.tasks("validation"),
                      "test": self.reader.test_tasks}
        if not self.tasks[a.eval_tasks]:
            raise ConfigError(f"'{a.histories}' holds no {a.eval_tasks} tasks for the in-run evaluation (files "
                              f"collected before the validation split have none: collect it again)")
        train = self.reader.select("train")
        if not train:
            raise ConfigError(f"'{a.histories}' holds no training histories")
        limit = a.max_history_steps or None
        lengths = [min(h.length, limit or h.length) for h in train]
        first_success = None
        if a.success_window_fraction > 0:
            first_success = [self.reader.first_reward_end(h.index, n) for h, n in zip(train, lengths, strict=True)]
        # under torchrun cfg is this rank's (distributed.rank_config): its own seed, so its own windows
        self.sampler = WindowSampler(lengths, [h.index for h in train], a.context_len, cfg.run.seed,
                                     first_success, a.success_window_fraction)
        self.usable = {h.index: n for h, n in zip(train, lengths, strict=True) if n < h.length}  # cut by the limit
        self.model = ADTransformer(model_config(cfg, self.env_params)).to(device)
        opt = torch.optim.AdamW if a.weight_decay > 0 else torch.optim.Adam
        kwargs = {"weight_decay": a.weight_decay} if a.weight_decay > 0 else {}
        self.optimizer = opt(self.model.parameters(), lr=a.learning_rate, betas=(a.adam_beta1, a.adam_beta2),
                             **kwargs)
        self.amp = a.amp and device.type == "cuda"
        self.env_steps = 0  # gradient steps
        self.eval_curve: np.ndarray | None = None  # mean return per episode index of the last evaluation

    def iteration(self, timer: PhaseTimer) -> IterationResult:
        a = self.cfg.ad
        with timer.phase("storage"):
            batch = read_windows(self.reader, self.sampler.sample(a.batch_size), a.context_len, self.usable)
        with timer.phase("learning"):
            mask = torch.from_numpy(batch.pop("mask")).to(self.device)
            t = {k: torch.from_numpy(v.astype(np.int64)).to(self.device, non_blocking=True)
                 for k, v in batch.items() if k != "done"}
            lr = cosine_lr(self.env_steps, self.cfg.run.total_steps, a.learning_rate, a.min_learning_rate,
                           a.warmup_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.model.train()
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                logits = self.model(t["obs"], t["action"], t["reward"], t["time_step"], t["next_obs"])
            # the padding after a history shorter than the context is no target
            per_position = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), t["action"].reshape(-1),
                                           reduction="none")
            weight = mask.reshape(-1).float()
            loss_sum = (per_position * weight).sum()
            correct = ((logits.argmax(-1) == t["action"]).reshape(-1).float() * weight).sum()
            # under torchrun the mean is over every rank's tokens (their counts differ with the padding): each
            # rank's sum over the global count, times the rank count that average_gradients divides by, makes
            # the averaged gradient the concatenated batch's; one process: sum / count as ever
            tokens, global_loss, global_correct = distributed.sum_over_ranks(
                torch.stack([weight.sum(), loss_sum.detach(), correct])).unbind()
            loss = loss_sum * distributed.world_size() / tokens
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(self.model.parameters())  # before the clip: every rank clips the same
            grad_norm = clip_grad_norm(self.model.parameters(), a.max_grad_norm)
            self.optimizer.step()
        self.env_steps += 1
        return IterationResult(metrics={"loss": (global_loss / tokens).item(),
                                        "accuracy": (global_correct / tokens).item(), "learning_rate": lr,
                                        "grad_norm": float(grad_norm)})

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        raise ConfigError("an AD model acts in context; evaluate it with `rlcli eval RUN --tasks test`")

    def evaluate(self, cfg: Config, episodes: int, deterministic: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """In-context evaluation on ``ad.eval_tasks`` (validation by default; never test), ``ad.eval_repeats``
        runs per task: per run, the mean return and length of the last ``ad.eval_last`` of ``ad.eval_episodes``
        episodes (``episodes`` is not used: AD's count is its own)."""
        from rlcli.ad.in_context import run_in_context

        a = cfg.ad
        outcome = None
        group = distributed.current()
        if group is None or group.is_main:  # under torchrun rank 0 evaluates and the others wait for its result
            tasks = [t for t in self.tasks[a.eval_tasks] for _ in range(a.eval_repeats)]
            r = run_in_context(self.model, tasks, a.eval_episodes, self.env_params,
                               seed=cfg.run.seed + EVAL_SEED_OFFSET, device=self.device, temperature=a.temperature)
            last = min(a.eval_last, a.eval_episodes)
            outcome = (r.returns[:, -last:].mean(1), r.lengths[:, -last:].mean(1), r.returns.mean(0))
        # every rank must take the same best.h5 decision: saving it is a collective step
        returns, lengths, self.eval_curve = distributed.broadcast_object(outcome)
        return returns, lengths

    def eval_metrics(self) -> dict[str, float]:
        """The last in-context curve in brief: the return of episode 1 and the mean of the first
        ``ad.eval_last`` episodes (``eval_return`` is the mean of the last ones)."""
        if self.eval_curve is None:
            return {}
        first = min(self.cfg.ad.eval_last, len(self.eval_curve))
        return {"eval_first_episode_return": float(self.eval_curve[0]),
                "eval_first_episodes_return": float(self.eval_curve[:first].mean())}

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        opt_state, groups = optimizer_to_tree(self.optimizer)
        tensors = {"model": self.model.state_dict(), "optimizer": opt_state, "rng": rng_state()}
        docs = {"optimizer_param_groups": groups, "sampler_rng": self.sampler.state(),
                "env_params": self.env_params, "tasks": self.tasks,
                "gradient_steps": self.env_steps}
        return tensors, docs

    def load_state(self, ckpt: Checkpoint, weights_only: bool = False) -> None:
        self.model.load_state_dict(ckpt.tensors("model"))
        if weights_only:
            return
        optimizer_from_tree(self.optimizer, ckpt.tensors("optimizer") if ckpt.has("optimizer") else {},
                            ckpt.documents["optimizer_param_groups"])
        self.sampler.load_state(ckpt.documents["sampler_rng"])
        load_rng_state(ckpt.tensors("rng"))
        self.env_steps = int(ckpt.attrs["step"])

    def close(self) -> None:
        self.reader.close()


def load_ad_model(ckpt: Checkpoint) -> tuple[ADTransformer, Config, dict, dict]:
    """(model with the saved weights in eval mode, config, env params, task split) from a checkpoint;
    needs no histories file."""
    import tomllib

    from rlcli.config.schema import build_config

    cfg = build_config("ad", [tomllib.loads(ckpt.attrs["config"])])
    env_params = ckpt.documents["env_params"]
    model = ADTransformer(model_config(cfg, env_params))
    model.load_state_dict(ckpt.tensors("model"))
    return model.eval(), cfg, env_params, ckpt.documents["tasks"]


CPU_PRESET = "darkroom-ad-small"  # sized for a CPU: minutes per thousand gradient steps
GPU_PRESET = "darkroom-ad"  # the seed's full-size model: about 33 s per gradient step on a 2-core CPU


EXPLORER_PRESETS = {True: "darkroom-ad-explorer", False: "darkroom-ad-explorer-paper"}  # by terminate_on_goal


def histories_preset(histories: str | Path | None) -> str | None:
    """The CPU preset made for a histories file's source and variant: the explorer presets for explorer
    histories (their model and sampling temperature were chosen on those), None for A2C histories or no
    readable file."""
    from rlcli.ad.collect import histories_source
    from rlcli.storage.histories import HistoryReader

    if not histories or not Path(histories).is_file():
        return None
    try:
        if histories_source(histories) != "explorer":
            return None
        with HistoryReader(histories) as reader:
            return EXPLORER_PRESETS[bool(reader.env_params.get("terminate_on_goal", True))]
    except (OSError, ValueError):
        return None  # the distill's own checks name what is wrong with the file


def distill_config(env: str, preset: str | None, overrides: list[str],
                   extra: dict | None = None) -> tuple[Config, str | None]:
    """(config, note) of ``rlcli distill``. Without a preset, the one that fits the device the run would use
    (``run.device``, auto by default): the full-size model on a GPU, the CPU-sized one without (for
    explorer histories, the explorer preset of their variant); ``note`` says which was picked, in one line
    (None when the preset was given)."""
    from rlcli.config.presets import resolve_config
    from rlcli.engine.seeding import resolve_device

    if preset is not None:
        return resolve_config("ad", env=env, preset=preset, overrides=overrides, extra=extra), None
    cfg = resolve_config("ad", env=env, preset=GPU_PRESET, overrides=overrides, extra=extra)
    if resolve_device(cfg.run.device).type == "cuda":
        return cfg, f"GPU found: the full-size model (preset {GPU_PRESET}); --preset {CPU_PRESET} for the small one"
    cpu_preset = histories_preset(cfg.ad.histories) or CPU_PRESET
    cfg = resolve_config("ad", env=env, preset=cpu_preset, overrides=overrides, extra=extra)
    return cfg, (f"no GPU: the CPU-sized model (preset {cpu_preset}); --preset {GPU_PRESET} for the full-size one "
                 f"(hours per thousand steps on a CPU)")


def distill(cfg: Config, *, histories: str | None = None, resume: str | None = None, reporter=None,
            timer: PhaseTimer | None = None, callbacks=None):
    """Train an AD model on ``histories`` (or ``cfg.ad.histories``) in the training loop; -> TrainResult."""
    from rlcli.engine.train import train

    if cfg.algo != "ad":
        raise ConfigError(f"distill needs an 'ad' config, got '{cfg.algo}'")
    if histories is not None:
        cfg.ad.histories = str(histories)
    if cfg.ad.histories:  # the run's config must find it again from any directory (eval's A2C baseline)
        cfg.ad.histories = str(Path(cfg.ad.histories).resolve())
    return train(cfg, resume=resume, reporter=reporter, timer=timer, callbacks=callbacks)

