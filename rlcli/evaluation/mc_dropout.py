"""MC-dropout evaluation (Gal & Ghahramani 2016): the policy's uncertainty from K dropout masks per step.

``rlcli eval RUN --mc-dropout K`` keeps dropout active at evaluation, runs every observation through K
independently sampled masks, acts on the mean of the K action distributions (argmax, or a sample with
``--stochastic``) and reports how much the K action distributions disagree:

- ``prob_std``: the standard deviation over the K masks of each action's probability, averaged over
  actions and over every step of every episode;
- ``prob_std_max``: the largest such per-step standard deviation (averaged over actions) seen;
- ``disagreement``: the share of steps where the K masks do not all pick the same greedy action.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rlcli.config.fields import ConfigError
from rlcli.engine.progress import CountReporter
from rlcli.nets.consistent_dropout import ConsistentDropout


@dataclass
class MCDropoutResult:
    checkpoint: Path
    step: int  # env steps the policy was trained for
    samples: int  # K, masks per step
    returns: np.ndarray  # (N,)
    lengths: np.ndarray  # (N,)
    prob_std: float
    prob_std_max: float
    disagreement: float  # fraction of steps, 0 to 1


def mc_action_probs(policy: nn.Module, obs: torch.Tensor, samples: int) -> torch.Tensor:
    """(B, *obs_shape) -> (K, B, A) action probabilities under K fresh dropout masks per observation."""
    was_training = policy.training
    policy.train()
    try:
        with torch.no_grad():
            b = obs.shape[0]
            repeated = obs.repeat(samples, *([1] * (obs.dim() - 1)))  # (K * B, ...), sample-major
            probs = policy.action_probs(repeated, policy.sample_extras(samples * b))
    finally:
        policy.train(was_training)
    return probs.view(samples, b, -1)


def has_dropout(policy: nn.Module) -> bool:
    return any(isinstance(m, ConsistentDropout | nn.Dropout) and getattr(m, "p", 0) > 0 for m in policy.modules())


def mc_dropout_evaluate(run_or_checkpoint: str | Path, samples: int, episodes: int = 10,
                        deterministic: bool = True, checkpoint: str = "last", overrides: list[str] = (),
                        seed: int | None = None,
                        reporter: CountReporter | None = None) -> MCDropoutResult:
    """Play ``episodes`` episodes with ``samples`` dropout masks per step; see the module docstring.
    ``reporter`` (a :class:`~rlcli.engine.progress.CountReporter`) follows the episodes as they finish."""
    from rlcli.engine.episodes import run_episodes
    from rlcli.engine.seeding import EVAL_SEED_OFFSET
    from rlcli.evaluation.evaluate import load_for_inference

    if samples < 1:
        raise ConfigError(f"--mc-dropout needs at least 1 mask per step, got {samples}")
    algo, cfg, path, step = load_for_inference(run_or_checkpoint, checkpoint, overrides)
    try:
        policy = getattr(algo, "policy", None)
        if policy is None or not has_dropout(policy):
            raise ConfigError(f"--mc-dropout needs a policy with dropout (e.g. --policy vit-consistent-dropout); "
                              f"'{path}' uses policy '{cfg.policy.name}' without dropout")
        device = next(policy.parameters()).device
        stds: list[np.ndarray] = []  # per step: (B,) mean over actions of the std over masks
        split: list[np.ndarray] = []  # per step: (B,) True where the K greedy actions are not unanimous

        def act(obs: np.ndarray) -> np.ndarray:
            probs = mc_action_probs(policy, torch.as_tensor(obs, device=device), samples)  # (K, B, A)
            stds.append(probs.std(dim=0, unbiased=False).mean(dim=-1).cpu().numpy())
            greedy = probs.argmax(dim=-1)  # (K, B)
            split.append((greedy != greedy[:1]).any(dim=0).cpu().numpy())
            mean = probs.mean(dim=0)
            action = mean.argmax(-1) if deterministic else torch.multinomial(mean, 1).squeeze(-1)
            return action.cpu().numpy()

        eval_seed = cfg.run.seed + EVAL_SEED_OFFSET if seed is None else seed
        reporter = reporter or CountReporter()
        reporter.start("mc-dropout episodes", episodes)
        returns, lengths = run_episodes(act, cfg.env, episodes, eval_seed, on_finished=reporter.update)
    finally:
        if reporter is not None:
            reporter.stop()
        algo.close()
    # step t of env i belongs to its (first) episode when t < lengths[i]; later steps are ignored
    std, dis = np.stack(stds), np.stack(split)  # (T, N)
    inside = np.arange(std.shape[0])[:, None] < lengths[None, :]
    return MCDropoutResult(path, step, samples, returns, lengths, float(std[inside].mean()),
                           float(std[inside].max()), float(dis[inside].mean()))
