"""``rlcli eval RUN --tasks test --episodes 40`` for Algorithm Distillation runs.

Plays the in-context evaluation (:func:`~rlcli.ad.in_context.run_in_context`) on the chosen task
split and sets its learning curve -- mean return per episode index -- beside the A2C source agents' curves
on the same tasks (read from the histories file the run was distilled from, when it is still there):
a table, a plot (``<run>/eval/in_context.png``) and GIFs of the agent's path for a few tasks
(``<run>/eval/path-task<k>.gif``). This is the only place that plays the test tasks (``--tasks test``);
training evaluates on the validation tasks. By default every task is played often enough for at least
:data:`MIN_RUNS` runs in all (4 per task on the 23 test tasks), and the headline figure comes with its
bootstrap confidence interval over runs (stratified by task).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rlcli.config.fields import ConfigError
from rlcli.engine.progress import CountReporter
from rlcli.storage.checkpoint import load_checkpoint, read_checkpoint_attrs
from rlcli.storage.runs import resolve_checkpoint

if TYPE_CHECKING:
    from rlcli.ad.in_context import InContextRollout

MIN_RUNS = 92  # default in-context runs of an evaluation: 4 per task on the 23 test tasks
SPLITS = ("test", "validation", "train")


def is_ad_checkpoint(run_or_checkpoint: str | Path, checkpoint: str = "last") -> bool:
    return read_checkpoint_attrs(resolve_checkpoint(run_or_checkpoint, checkpoint)).get("algo") == "ad"


@dataclass
class ADEvalResult:
    checkpoint: Path
    step: int  # gradient steps
    tasks: list[int]
    repeats: int  # in-context runs per task (rows of ``returns`` are task-major: task 0's runs first)
    seed: int  # of the action sampling
    returns: np.ndarray  # (tasks * repeats, episodes): AD's return per episode index
    source_returns: np.ndarray | None  # (histories, E'): the A2C agents' return per episode, same tasks
    plot: Path | None
    gifs: list[Path]

    def curve(self) -> np.ndarray:
        return self.returns.mean(0)

    def last_mean(self, last: int = 10) -> float:
        return float(self.returns[:, -last:].mean())

    def last_estimate(self, last: int = 10, reps: int = 10_000) -> tuple[float, float, float]:
        """(mean, 95% CI low, high) of the return of the last ``last`` episodes over all runs: the stratified
        bootstrap of :mod:`rlcli.evaluation.aggregate`, resampling each task's runs (all runs together when
        there is one run per task)."""
        from rlcli.evaluation.aggregate import aggregate_mean, stratified_bootstrap_ci

        per_run = self.returns[:, -last:].mean(1).reshape(len(self.tasks), self.repeats)  # (tasks, repeats)
        # one run per task: resample the runs across tasks (within a task there is nothing to resample)
        scores = per_run.T if self.repeats > 1 else per_run.reshape(-1, 1)
        est = stratified_bootstrap_ci(scores, aggregate_mean, reps=reps, seed=self.seed)
        return est.value, est.low, est.high

    def summary(self, last: int = 10) -> str:
        """The headline figure with n and its CI, as one line."""
        mean, low, high = self.last_estimate(last)
        return (f"AD, last {last} of {self.returns.shape[1]} episodes: {mean:.2f} (95% CI {low:.2f}-{high:.2f}), "
                f"n = {len(self.returns)} runs ({len(self.tasks)} tasks x {self.repeats})")


def source_curves(histories: str | Path, tasks: list[int]) -> np.ndarray | None:
    """The A2C agents' return per episode of their own learning, for every history of ``tasks``: (H, E),
    truncated to the shortest, or None. Skipped episodes are interpolated between the stored ones."""
    import tomllib

    from rlcli.ad.collect import stored_episode_index
    from rlcli.storage.histories import HistoryReader, episode_returns

    if not histories or not Path(histories).is_file():
        return None
    wanted = set(tasks)
    with HistoryReader(histories) as reader:
        stored = [episode_returns(h["reward"], h["done"]) for h in
                  (reader.read(info.index) for info in reader.histories if info.task in wanted)]
        collect = tomllib.loads(reader.config_toml).get("collect", {})
    stride, dense = collect.get("episode_stride", 1), collect.get("dense_until_success", False)
    skip = collect.get("skip_after_success", 0)
    curves = []
    for returns in (r for r in stored if len(r)):
        index = stored_episode_index(returns, stride, dense, skip)
        curves.append(np.interp(np.arange(index[-1] + 1), index, returns))
    if not curves:
        return None
    n = min(len(c) for c in curves)
    return np.stack([c[:n] for c in curves])


def default_repeats(num_tasks: int) -> int:
    """In-context runs per task for at least :data:`MIN_RUNS` runs in all."""
    return max(1, math.ceil(MIN_RUNS / max(1, num_tasks)))


def evaluate_ad(run_or_checkpoint: str | Path, tasks: str = "test", episodes: int = 40, repeats: int | None = None,
                gifs: int = 4, out_dir: str | Path | None = None, checkpoint: str = "last",
                seed: int | None = None, device: str = "cpu", reporter: CountReporter | None = None) -> ADEvalResult:
    """In-context evaluation of an AD run on its ``tasks`` split ("test", "validation" or "train"),
    ``repeats`` runs per task (default: :func:`default_repeats`), actions sampled from ``seed`` (default:
    the run's seed + the evaluation offset); ``reporter`` (a :class:`~rlcli.engine.progress.CountReporter`)
    follows the episodes as they finish."""
    if tasks not in SPLITS:
        raise ConfigError(f"--tasks must be one of {', '.join(SPLITS)}, got '{tasks}'")
    if repeats is not None and repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {repeats}")
    import torch

    from rlcli.ad.distill import load_ad_model
    from rlcli.ad.in_context import run_in_context
    from rlcli.engine.seeding import EVAL_SEED_OFFSET

    path = resolve_checkpoint(run_or_checkpoint, checkpoint)
    ckpt = load_checkpoint(path)
    model, cfg, env_params, split = load_ad_model(ckpt)
    chosen = split.get(tasks, [])
    if not chosen:
        raise ConfigError(f"the run's task split has no {tasks} tasks"
                          + (" (it was distilled before validation splits: collect and distill it again)"
                             if tasks == "validation" else ""))
    repeats = repeats or default_repeats(len(chosen))
    seed = cfg.run.seed + EVAL_SEED_OFFSET if seed is None else seed
    torch.set_num_threads(max(1, cfg.run.torch_threads))
    model = model.to(device)
    reporter = reporter or CountReporter()
    reporter.start("in-context episodes", len(chosen) * repeats * episodes)
    try:
        rollout = run_in_context(model, [t for t in chosen for _ in range(repeats)], episodes, env_params,
                                 seed=seed, device=device, on_finished=reporter.update)
    finally:
        reporter.stop()
    source = source_curves(cfg.ad.histories, chosen)
    out = Path(out_dir) if out_dir is not None else (path.parent.parent / "eval" if path.parent.name ==
                                                     "checkpoints" else path.parent / "eval")
    out.mkdir(parents=True, exist_ok=True)
    plot = plot_curves(rollout.returns, source, out / "in_context.png", tasks)
    written = [path_gif(rollout, row * repeats, out / f"path-task{chosen[row]}.gif", env_params)
               for row in range(min(gifs, len(chosen)))]
    return ADEvalResult(path, int(ckpt.attrs.get("step", 0)), chosen, repeats, seed, rollout.returns, source, plot,
                        written)


def plot_curves(returns: np.ndarray, source: np.ndarray | None, path: Path, tasks: str) -> Path:
    """AD's in-context curve (episodes 1..E) and the A2C agents' curve over their whole learning."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    e = np.arange(1, returns.shape[1] + 1)
    mean, sem = returns.mean(0), returns.std(0) / np.sqrt(len(returns))
    ax.plot(e, mean, label=f"AD in context ({len(returns)} runs; band: ± 1 standard error)", color="tab:blue")
    ax.fill_between(e, mean - sem, mean + sem, alpha=0.2, color="tab:blue")
    if source is not None:
        ax.plot(np.arange(1, source.shape[1] + 1), source.mean(0),
                label=f"A2C source agents ({len(source)} histories)", color="tab:orange")
    ax.set_xscale("log")
    ax.set_xlabel("episode index")
    ax.set_ylabel("return")
    ax.set_title(f"DarkRoom, {tasks} tasks: return per episode")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def path_gif(rollout: InContextRollout, row: int, path: Path, env_params: dict,
             episodes: tuple[int, ...] = (0, 1, -2, -1), fps: int = 8) -> Path:
    """GIF of the agent's path in some episodes of one row (default: the first two and the last two)."""
    from rlcli.envs.darkroom import render_room, task_goal
    from rlcli.evaluation.video import write_video

    size = env_params["size"]
    centre = (size // 2, size // 2)
    goal = task_goal(rollout.tasks[row], size)
    ends = np.flatnonzero(rollout.dones[row])
    starts = np.concatenate([[0], ends[:-1] + 1])
    n = len(ends)
    frames = []
    for e in sorted({e % n for e in episodes}) if n else []:
        trail: list[tuple[int, int]] = []
        visited = [centre] + [divmod(int(c), size) for c in rollout.cells[row, starts[e]:ends[e] + 1]]
        for rc in visited:
            trail.append(rc)
            frame = render_room(rc, goal, size, trail=trail[:-1])
            bar = np.zeros((6, frame.shape[1], 3), dtype=np.uint8)  # progress bar: which episode
            bar[:, : int(frame.shape[1] * (e + 1) / n)] = (200, 160, 40)
            frames.append(np.concatenate([bar, frame]))
        frames.extend([frames[-1]] * 3)  # pause at the end of each episode
    return write_video(frames, path, fps=fps)
