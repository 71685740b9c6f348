"""``rlcli eval RUN --tasks test --episodes 40`` for Algorithm Distillation runs.

Plays the in-context evaluation (:func:`~rlcli.ad.in_context.run_in_context`) on the chosen task
split and sets its learning curve -- mean return per episode index -- beside the A2C source agents' curves
on the same tasks (read from the histories file the run was distilled from, when it is still there) and
the three scripted agents of :mod:`rlcli.ad.baselines` played on the same tasks, as many runs per task
and seeded from the same evaluation seed: a table, a plot (``<run>/eval/in_context.png``) and GIFs of
the agent's path for a few tasks (``<run>/eval/path-task<k>.gif``). This is the only place that plays the test tasks (``--tasks test``);
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
CI_REPS = 10_000  # bootstrap replicates of the printed confidence intervals
SOURCE_LABELS = {"a2c": "A2C", "explorer": "explorer"}  # collect.source -> its name in tables and plots
AGENT_LABELS = {"ad": "AD in context", "source": "A2C source agents", "random": "uniform random",
                "random_walk_then_return": "random walk + return", "sweep_then_return": "sweep + return (bound)"}


def runs_by_task(values: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """One value per run, ``tasks[i]`` the task of run ``i`` -> the (runs per task, tasks) matrix that
    :func:`rlcli.evaluation.aggregate.stratified_bootstrap_ci` resamples within each task. When the tasks
    do not all have the same number of runs, or have one run each (nothing to resample within a task),
    all runs form one column and are resampled together."""
    values, tasks = np.asarray(values, dtype=np.float64), np.asarray(tasks)
    names, counts = np.unique(tasks, return_counts=True)
    if counts.min() != counts.max() or counts[0] < 2:
        return values.reshape(-1, 1)
    return np.stack([values[tasks == t] for t in names], axis=1)


def pointwise_band(returns: np.ndarray, tasks: np.ndarray, reps: int = 1000,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per episode of the 95% stratified-bootstrap CI of the mean curve of ``returns``
    (runs, E): the resampling of :func:`runs_by_task`, done as run counts times returns so that a curve of
    thousands of episodes (the A2C agents') costs one matrix product per task."""
    runs = np.arange(len(returns))
    groups = runs_by_task(runs, tasks).astype(np.int64)  # (runs per task, tasks) of row indices
    rng = np.random.default_rng(seed)
    total = np.zeros((reps, returns.shape[1]))
    for column in groups.T:
        n = len(column)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=reps)  # (reps, n): how often each run is drawn
        total += counts @ returns[column]
    means = total / groups.size
    low, high = np.percentile(means, [2.5, 97.5], axis=0)
    return low, high


@dataclass
class AgentCurves:
    """One agent's return per episode index over its runs, with the task of each run."""

    name: str  # a key of AGENT_LABELS, or "source" / "compare" (source agents of a histories file)
    returns: np.ndarray  # (runs, E)
    tasks: np.ndarray  # (runs,)
    title: str = ""  # the label, where it is not AGENT_LABELS[name]

    @property
    def label(self) -> str:
        return self.title or AGENT_LABELS[self.name]

    def estimate(self, first: int, last: int, reps: int = CI_REPS, seed: int = 0) -> tuple[float, float, float]:
        """(mean, 95% CI low, high) of the mean return of episodes ``first``..``last`` (1-based, inclusive)
        per run: the stratified bootstrap of :mod:`rlcli.evaluation.aggregate` over runs, within tasks."""
        from rlcli.evaluation.aggregate import aggregate_mean, stratified_bootstrap_ci

        per_run = self.returns[:, first - 1:last].mean(1)
        est = stratified_bootstrap_ci(runs_by_task(per_run, self.tasks), aggregate_mean, reps=reps, seed=seed)
        return est.value, est.low, est.high


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
    # scripted agent -> (repeats * tasks, episodes), repeat-major: row r * len(tasks) + j is task j, seed + r
    baselines: dict[str, np.ndarray] | None = None
    source_tasks: np.ndarray | None = None  # (histories,): the task of each row of source_returns
    source: str = "a2c"  # the source algorithm of the histories (collect.source)
    # the source agents of another collection on the same tasks (--compare-histories), or None
    compare: AgentCurves | None = None
    temperature: float = 1.0  # of AD's action sampling

    def agents(self) -> list[AgentCurves]:
        """AD, its source agents (when their histories are still there), the source agents of a compared
        collection and the scripted baselines."""
        out = [AgentCurves("ad", self.returns, np.repeat(self.tasks, self.repeats))]
        if self.source_returns is not None:
            out.append(AgentCurves("source", self.source_returns, self.source_tasks,
                                   f"{SOURCE_LABELS.get(self.source, self.source)} source agents"))
        if self.compare is not None:
            out.append(self.compare)
        for name, returns in (self.baselines or {}).items():
            out.append(AgentCurves(name, returns, np.tile(self.tasks, len(returns) // len(self.tasks))))
        return out

    def curve(self) -> np.ndarray:
        return self.returns.mean(0)

    def last_mean(self, last: int = 10) -> float:
        return float(self.returns[:, -last:].mean())

    def last_estimate(self, last: int = 10, reps: int = 10_000) -> tuple[float, float, float]:
        """(mean, 95% CI low, high) of the return of the last ``last`` episodes over all runs: the stratified
        bootstrap of :mod:`rlcli.evaluation.aggregate`, resampling each task's runs (all runs together when
        there is one run per task)."""
        n = self.returns.shape[1]
        return self.agents()[0].estimate(n - last + 1, n, reps=reps, seed=self.seed)

    def summary(self, last: int = 10) -> str:
        """The headline figure with n and its CI, as one line."""
        mean, low, high = self.last_estimate(last)
        return (f"AD, last {last} of {self.returns.shape[1]} episodes: {mean:.2f} (95% CI {low:.2f}-{high:.2f}), "
                f"n = {len(self.returns)} runs ({len(self.tasks)} tasks x {self.repeats})")


def source_curves(histories: str | Path, tasks: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The source agents' return per episode of their own learning, for every history of ``tasks``: ((H, E),
    truncated to the shortest, and the task of each history (H,)), or None. Skipped episodes are
    interpolated between the stored ones."""
    import tomllib

    from rlcli.ad.collect import stored_episode_index
    from rlcli.storage.histories import HistoryReader, episode_returns

    if not histories or not Path(histories).is_file():
        return None
    wanted = set(tasks)
    with HistoryReader(histories) as reader:
        infos = [info for info in reader.histories if info.task in wanted]
        stored = [episode_returns(h["reward"], h["done"]) for h in (reader.read(info.index) for info in infos)]
        collect = tomllib.loads(reader.config_toml).get("collect", {})
    stride, dense = collect.get("episode_stride", 1), collect.get("dense_until_success", False)
    skip = collect.get("skip_after_success", 0)
    curves, curve_tasks = [], []
    for returns, info in zip(stored, infos, strict=True):
        if len(returns):
            index = stored_episode_index(returns, stride, dense, skip)
            curves.append(np.interp(np.arange(index[-1] + 1), index, returns))
            curve_tasks.append(info.task)
    if not curves:
        return None
    n = min(len(c) for c in curves)
    return np.stack([c[:n] for c in curves]), np.asarray(curve_tasks)


def compare_curves(histories: str | Path, split: str, tasks: list[int], env_params: dict) -> AgentCurves:
    """The source agents of another collection (``--compare-histories``) on the run's ``split`` tasks, say
    the A2C agents beside an AD run distilled from explorers. Raises ConfigError unless the file holds a
    ``split`` split with the same tasks and the same room (the same run.seed and split sizes do)."""
    from rlcli.storage.histories import HistoryReader

    path = Path(histories)
    if not path.is_file():
        raise ConfigError(f"--compare-histories: no histories file '{path}'")
    with HistoryReader(path) as reader:  # a damaged or foreign file: CorruptFileError, one line
        theirs, their_env = reader.tasks(split), dict(reader.env_params)
    if sorted(theirs) != sorted(tasks):
        raise ConfigError(f"--compare-histories: '{path}' has other {split} tasks than the run (collect it with "
                          f"the run's run.seed and split sizes)")
    for key in ("size", "max_steps", "terminate_on_goal"):
        if key in their_env and key in env_params and bool(their_env[key] != env_params[key]):
            raise ConfigError(f"--compare-histories: '{path}' was collected with env {key} = {their_env[key]}, "
                              f"the run with {env_params[key]}")
    found = source_curves(path, tasks)
    if found is None:
        raise ConfigError(f"--compare-histories: '{path}' holds no source agents on the {split} tasks "
                          f"(collect.test_histories_per_task = 0?)")
    from rlcli.ad.collect import histories_source

    source = histories_source(path)
    return AgentCurves("compare", found[0], found[1],
                       f"{SOURCE_LABELS.get(source, source)} agents ({path.name})")


def default_repeats(num_tasks: int) -> int:
    """In-context runs per task for at least :data:`MIN_RUNS` runs in all."""
    return max(1, math.ceil(MIN_RUNS / max(1, num_tasks)))


def run_seeds(seed: int, tasks: list[int], repeats: int) -> list[int]:
    """The action-sampling seed of each in-context run (task-major, as the rows of
    :attr:`ADEvalResult.returns`): a function of the evaluation seed, the run's task and its repeat only, so
    a run plays the same in one batch here or in any share of a Ray evaluation."""
    return [int(np.random.SeedSequence([seed % 2**63, task, r]).generate_state(1)[0])
            for task in tasks for r in range(repeats)]


def evaluate_ad(run_or_checkpoint: str | Path, tasks: str = "test", episodes: int = 40, repeats: int | None = None,
                gifs: int = 4, out_dir: str | Path | None = None, checkpoint: str = "last",
                seed: int | None = None, device: str = "cpu", reporter: CountReporter | None = None,
                ray: str | None = None, compare_histories: str | Path | None = None,
                temperature: float | None = None) -> ADEvalResult:
    """In-context evaluation of an AD run on its ``tasks`` split ("test", "validation" or "train"),
    ``repeats`` runs per task (default: :func:`default_repeats`), actions sampled from ``seed`` (default:
    the run's seed + the evaluation offset); ``reporter`` (a :class:`~rlcli.engine.progress.CountReporter`)
    follows the episodes as they finish. The scripted baselines play the same tasks, ``repeats`` runs per
    task, their r-th run on every task seeded with ``seed + r``. Each AD run samples from its own seed
    (:func:`run_seeds`); with ``ray`` ("auto" or a cluster address) the runs are split across Ray tasks
    (:mod:`rlcli.ad.ray_eval`), with the same returns. ``compare_histories``: another collection whose
    source agents played the same tasks (:func:`compare_curves`), shown beside the run's own source.
    ``temperature``: of the action sampling (default: the run's ``ad.temperature``)."""
    if tasks not in SPLITS:
        raise ConfigError(f"--tasks must be one of {', '.join(SPLITS)}, got '{tasks}'")
    if temperature is not None and not temperature >= 1e-3:
        raise ConfigError(f"--temperature must be at least 0.001, got {temperature}")
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
    compare = (compare_curves(compare_histories, tasks, chosen, env_params) if compare_histories is not None
               else None)  # checked before any episode is played
    repeats = repeats or default_repeats(len(chosen))
    temperature = cfg.ad.temperature if temperature is None else temperature
    seed = cfg.run.seed + EVAL_SEED_OFFSET if seed is None else seed
    torch.set_num_threads(max(1, cfg.run.torch_threads))
    model = model.to(device)
    reporter = reporter or CountReporter()
    reporter.start("in-context episodes", len(chosen) * repeats * episodes)
    run_tasks = [t for t in chosen for _ in range(repeats)]
    try:
        if ray:
            from rlcli.ad.ray_eval import run_in_context_on_ray

            rollout = run_in_context_on_ray(ray, path, run_tasks, run_seeds(seed, chosen, repeats), episodes,
                                            on_finished=reporter.update, temperature=temperature)
        else:
            rollout = run_in_context(model, run_tasks, episodes, env_params, seed=seed, device=device,
                                     on_finished=reporter.update, row_seeds=run_seeds(seed, chosen, repeats),
                                     temperature=temperature)
    finally:
        reporter.stop()
    from rlcli.ad.baselines import baseline_curves

    baselines = baseline_curves(chosen, episodes, env_params, seeds=[seed + r for r in range(repeats)])
    from rlcli.ad.collect import histories_source

    found = source_curves(cfg.ad.histories, chosen)
    source, source_tasks = found if found is not None else (None, None)
    result = ADEvalResult(path, int(ckpt.attrs.get("step", 0)), chosen, repeats, seed, rollout.returns, source,
                          None, [], baselines, source_tasks,
                          histories_source(cfg.ad.histories) if source is not None else "a2c", compare, temperature)
    out = Path(out_dir) if out_dir is not None else (path.parent.parent / "eval" if path.parent.name ==
                                                     "checkpoints" else path.parent / "eval")
    out.mkdir(parents=True, exist_ok=True)
    result.plot = plot_curves(result.agents(), out / "in_context.png", tasks, seed=seed)
    result.gifs = [path_gif(rollout, row * repeats, out / f"path-task{chosen[row]}.gif", env_params)
                   for row in range(min(gifs, len(chosen)))]
    return result


AGENT_COLOURS = {"ad": "tab:blue", "source": "tab:orange", "compare": "tab:brown", "random": "tab:gray",
                 "random_walk_then_return": "tab:green", "sweep_then_return": "tab:purple"}


def plot_curves(agents: list[AgentCurves], path: Path, tasks: str, seed: int = 0) -> Path:
    """Every agent's mean return per episode index with its pointwise 95% bootstrap band: AD in context
    (episodes 1..E), the source agents over their whole learning, the scripted baselines over 1..E."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for agent in agents:
        e = np.arange(1, agent.returns.shape[1] + 1)
        low, high = pointwise_band(agent.returns, agent.tasks, seed=seed)
        colour = AGENT_COLOURS[agent.name]
        ax.plot(e, agent.returns.mean(0), label=f"{agent.label} (n = {len(agent.returns)})", color=colour,
                linestyle="-" if agent.name in ("ad", "source", "compare") else "--")
        ax.fill_between(e, low, high, alpha=0.2, color=colour)
    ax.set_xscale("log")
    ax.set_xlabel("episode index")
    ax.set_ylabel("return")
    ax.set_title(f"DarkRoom, {tasks} tasks: return per episode (bands: 95% bootstrap CI over runs)")
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
