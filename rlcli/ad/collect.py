"""``rlcli.collect(cfg, out)``: learning histories of batched source agents on DarkRoom tasks, into HDF5.

The source (``collect.source``) is A2C (the seed's, :mod:`rlcli.ad.source_a2c`) or the novelty explorer
(:mod:`rlcli.ad.source_explorer`, which explores better than a random walk); both run through the same
:class:`Collection`, which the text below describes for A2C.

The 80 tasks are split by ``run.seed`` into train, validation and test tasks (the split is stored in the
file; AD trains on the first, picks its checkpoint on the second and is scored on the third). Every training
task gets ``collect.histories_per_task`` agents with different seeds and every validation and test task
``collect.test_histories_per_task`` (their curves are the A2C baseline of the in-context evaluation; AD
never trains on them). All agents learn at once in one :class:`~rlcli.ad.source_a2c.BatchedA2C`, stepping one
:class:`~rlcli.envs.darkroom.DarkRoomBatch` of (agents x ``a2c.num_envs``) rooms. The first
``collect.streams_per_agent`` env streams of each agent are streamed into the file as histories, keeping
every ``collect.episode_stride``-th episode of each stream (1 = all); with ``collect.dense_until_success``,
every episode up to the stream's first success and every k-th after it (a subsampled history would otherwise
show the goal reached within a few stored episodes, faster than any exploration can find it, which a model
trained on it can only imitate by guessing the training goals); ``collect.skip_after_success`` leaves out
the episodes right after the success, in which the source has not yet learned to return to the goal.

The collection is an :class:`~rlcli.engine.algorithm.Algorithm` (:class:`Collection`: one iteration is one
batched A2C update and the storage of its transitions) driven by the one training loop, which gives it
progress, metrics, checkpoints, Ctrl-C and resume. Its run folder sits beside the histories file
(``data.h5`` -> ``data.collect/``: config.toml, metrics.h5 of the source agents' training, and while the
collection is unfinished ``checkpoints/last.h5``). A checkpoint -- saved every ``collect.checkpoint_every``
updates and on Ctrl-C -- holds weights, Adam state, rooms, RNG and the history lengths written so far;
running the same command again truncates the histories to those lengths and continues, so an interrupted
collection ends with exactly the file an uninterrupted one writes.

A collection may hold a subset of the agents (``agents``: a shard, see :mod:`rlcli.ad.shards`): each agent
keeps its global index, seed, task and action noise, so the shards' histories are the whole collection's.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlcli.config.fields import ConfigError
from rlcli.config.schema import Config
from rlcli.engine.algorithm import Algorithm, IterationResult
from rlcli.engine.progress import Reporter
from rlcli.engine.timing import PhaseTimer
from rlcli.engine.train import TrainingInterrupted, TrainResult, train
from rlcli.envs.darkroom import MAX_STEPS, NUM_ACTIONS, SIZE, DarkRoomBatch, num_tasks, task_goal
from rlcli.storage.checkpoint import Checkpoint, read_checkpoint_attrs
from rlcli.storage.histories import HistoryReader, HistorySpec, HistoryWriter
from rlcli.storage.runs import CHECKPOINT_LAST


@dataclass
class CollectResult:
    path: Path
    run_dir: Path  # the collection's run folder (metrics of the source agents' training)
    num_agents: int
    num_histories: int
    env_steps: int  # summed over all agents, this call
    wall_time: float  # s, this call
    resumed: bool
    final_train_return: float  # mean of the agents' last learning-curve points (train tasks)

    @property
    def steps_per_second(self) -> float:
        return self.env_steps / max(self.wall_time, 1e-9)


class CollectionInterrupted(TrainingInterrupted):
    """Ctrl-C: the checkpoint is saved; rerun the same command to continue."""

    def __init__(self, result: TrainResult, out: Path):
        super().__init__(result)
        self.args = (f"interrupted at step {result.steps}; the state is saved in {result.run_dir}; rerun the same "
                     f"command (--out {out}) to resume",)


def split_tasks(seed: int, num_test: int, num_validation: int = 0,
                size: int = SIZE) -> tuple[list[int], list[int], list[int]]:
    """(train, validation, test) tasks, each sorted: a permutation of the task ids drawn from ``seed``; the
    test tasks come first in it, so a seed's test tasks do not depend on ``num_validation``."""
    perm = np.random.default_rng(seed).permutation(num_tasks(size))
    cut = num_test + num_validation
    return sorted(perm[cut:].tolist()), sorted(perm[num_test:cut].tolist()), sorted(perm[:num_test].tolist())


def keep_episode(episode: torch.Tensor, found_at: torch.Tensor, stride: int, dense_until_success: bool,
                 skip_after_success: int = 0) -> torch.Tensor:
    """Whether each stream stores its ``episode``-th episode (0-based): every ``stride``-th; with
    ``dense_until_success``, every episode up to the stream's first success (``found_at`` < 0: none yet),
    then, after ``skip_after_success`` unstored episodes, every ``stride``-th."""
    if not dense_until_success:
        return episode % stride == 0
    after = episode - found_at - 1 - skip_after_success  # 0 = the first episode stored after the success
    return (found_at < 0) | ((after >= 0) & (after % stride == 0))


def stored_episode_index(returns: np.ndarray, stride: int, dense_until_success: bool,
                         skip_after_success: int = 0) -> np.ndarray:
    """The source's own (0-based) episode index of each stored episode of a history whose stored episodes
    returned ``returns`` (E,): the inverse of :func:`keep_episode`."""
    e = np.arange(len(returns))
    if not dense_until_success:
        return e * stride
    found = np.flatnonzero(returns > 0)
    first = found[0] if len(found) else len(returns)
    return np.where(e <= first, e, first + 1 + skip_after_success + (e - first - 1) * stride)


def histories_source(histories: str | Path) -> str:
    """The source algorithm (``collect.source``) a histories file was collected with; "a2c" for files from
    before the choice existed."""
    import tomllib

    with HistoryReader(histories) as reader:
        return tomllib.loads(reader.config_toml).get("collect", {}).get("source", "a2c")


def collection_run_dir(out: str | Path) -> Path:
    """The run folder of the collection into ``out``: beside it, ``data.h5`` -> ``data.collect``."""
    out = Path(out)
    return out.with_name(out.stem + ".collect")


def source_agents(cfg: Config) -> tuple[list[int], list[str]]:
    """(task, split) of every source agent of a collection, in agent order: ``collect.histories_per_task``
    per training task, then ``collect.test_histories_per_task`` per validation task and per test task."""
    cc = cfg.collect
    train, validation, test = split_tasks(cfg.run.seed, cc.num_test_tasks, cc.num_validation_tasks)
    used_train = train[:cc.max_train_tasks] if cc.max_train_tasks else train
    tasks = [t for t in used_train for _ in range(cc.histories_per_task)]
    splits = ["train"] * len(tasks)
    for split, chosen in (("validation", validation), ("test", test)):
        tasks += [t for t in chosen for _ in range(cc.test_histories_per_task)]
        splits += [split] * (len(tasks) - len(splits))
    return tasks, splits


def _env_params(cfg: Config) -> dict:
    return {"id": "darkroom", "size": SIZE, "max_steps": cfg.env.max_episode_steps or MAX_STEPS,
            "terminate_on_goal": cfg.env.terminate_on_goal, "num_actions": NUM_ACTIONS,
            "num_states": SIZE * SIZE}


RUN_FOLDER_ENTRIES = {"config.toml", "metrics.h5", "checkpoints"}  # what the loop writes for a collection
BUFFERED = ("obs", "action", "next_obs", "reward", "done", "time_step", "keep")


class Collection(Algorithm):
    """The source agents of a collection as one learner of the training loop: an iteration is one batched
    A2C update of every agent (``env_steps`` sums the steps of all agents) and the storage of the stored
    streams' transitions into ``out``. The histories file is opened on the first iteration (a fresh
    collection) or in :meth:`load_state` (a resumed one, cut back to the checkpoint's lengths)."""

    evaluates = False  # the histories are the product; AD's evaluation comes with `rlcli distill`

    def __init__(self, cfg: Config, device: torch.device, out: str | Path, config_toml: str,
                 agents: range | None = None):
        """``agents``: the global indices of the agents this collection holds (default: all)."""
        self.cfg, self.device, self.out, self.config_toml = cfg, device, Path(out), config_toml
        cc, hp = cfg.collect, cfg.a2c
        self.env_params = _env_params(cfg)
        self.train_tasks, self.validation_tasks, self.test_tasks = split_tasks(
            cfg.run.seed, cc.num_test_tasks, cc.num_validation_tasks)
        all_tasks, all_splits = source_agents(cfg)
        agent_ids = list(agents) if agents is not None else list(range(len(all_tasks)))
        self.agent_tasks, self.agent_splits = [all_tasks[a] for a in agent_ids], [all_splits[a] for a in agent_ids]
        agent_tasks, agent_splits = self.agent_tasks, self.agent_splits
        self.train_agent = torch.tensor([s == "train" for s in agent_splits], device=device)
        n_agents, n_envs, streams = len(agent_tasks), hp.num_envs, cc.streams_per_agent
        self.n_agents, self.n_envs = n_agents, n_envs
        self.specs = [HistorySpec(agent_tasks[i], agent_splits[i], a, s) for i, a in enumerate(agent_ids)
                      for s in range(streams)]
        self.stream_index = torch.tensor([a * n_envs + s for a in range(n_agents) for s in range(streams)],
                                         device=device)
        goals = torch.tensor([task_goal(t) for t in agent_tasks for _ in range(n_envs)], dtype=torch.long)
        self.rooms = DarkRoomBatch(goals, SIZE, self.env_params["max_steps"], self.env_params["terminate_on_goal"],
                                   device)
        seeds = [cfg.run.seed * 1_000_003 + a for a in agent_ids]
        if cc.source == "explorer":
            from rlcli.ad.source_explorer import BatchedExplorer

            self.agents = BatchedExplorer(SIZE, NUM_ACTIONS, self.rooms.next_cell, self.rooms.start_cell, cc, seeds,
                                          n_envs, device)
        else:
            from rlcli.ad.source_a2c import BatchedA2C

            self.agents = BatchedA2C(SIZE * SIZE, NUM_ACTIONS, hp, seeds, device)
        self.obs = self.rooms.reset().reshape(n_agents, n_envs)
        self.ep_return = torch.zeros(n_agents, n_envs, device=device)
        self.curve_sum = torch.zeros(n_agents, device=device)
        self.curve_count = torch.zeros(n_agents, device=device)
        n_streams = len(self.specs)
        self.stream_episode = torch.zeros(n_streams, dtype=torch.long, device=device)  # episodes begun per stream
        self.stream_found_at = torch.full((n_streams,), -1, dtype=torch.long, device=device)  # first success
        self.stream_keep = torch.ones(n_streams, dtype=torch.bool, device=device)  # store the current episode
        self.steps_per_update = n_agents * n_envs * hp.num_steps
        self.updates_total = -(-cc.steps_per_agent // (n_envs * hp.num_steps))
        self.updates = 0
        self.env_steps = 0
        self.writer: HistoryWriter | None = None
        self.buffer: dict[str, list[torch.Tensor]] = {k: [] for k in BUFFERED}

    def _open_new(self) -> HistoryWriter:
        return HistoryWriter(self.out, self.specs, self.env_params, self.train_tasks, self.test_tasks,
                             self.agent_tasks, self.agent_splits, self.config_toml, self.cfg.collect.chunk_size,
                             other_tasks={"validation": self.validation_tasks})

    def iteration(self, timer: PhaseTimer) -> IterationResult:
        if self.writer is None:
            self.writer = self._open_new()
        hp = self.cfg.a2c
        n_agents, n_envs = self.n_agents, self.n_envs
        shape, device = (hp.num_steps, n_agents, n_envs), self.device
        r_obs = torch.empty(shape, dtype=torch.long, device=device)
        r_act, r_time, r_final_obs = torch.empty_like(r_obs), torch.empty_like(r_obs), torch.empty_like(r_obs)
        r_term = torch.empty(shape, dtype=torch.bool, device=device)
        r_trunc = torch.empty_like(r_term)
        r_rew = torch.empty(shape, device=device)
        with timer.phase("inference"):
            policies = self.agents.tables()  # the parameters do not change within a rollout
            # each agent's own draws (seeded by its seed and the update), so shards act as one process does
            noise = self.agents.action_noise(self.updates, hp.num_steps, n_envs)
        # The step loop: no host-device synchronisation (no .item(), .cpu(), bool(tensor) or data-dependent
        # shape); everything that does not feed the next step is done on whole (T, ...) tensors after it.
        for t in range(hp.num_steps):
            with timer.phase("inference"):
                action = policies.act(self.obs, noise[t])
            with timer.phase("env"):
                r_time[t] = self.rooms.t.reshape(n_agents, n_envs)
                nxt, reward, term, trunc, final_obs = self.rooms.step(action.reshape(-1))
                policies.observe(final_obs.reshape(n_agents, n_envs), reward.reshape(n_agents, n_envs),
                                 (term | trunc).reshape(n_agents, n_envs))  # the explorer's memory
            r_obs[t], r_act[t] = self.obs, action
            r_rew[t] = reward.reshape(n_agents, n_envs)
            r_term[t], r_trunc[t] = term.reshape(n_agents, n_envs), trunc.reshape(n_agents, n_envs)
            r_final_obs[t] = final_obs.reshape(n_agents, n_envs)
            self.obs = nxt.reshape(n_agents, n_envs)
        with timer.phase("inference"):
            # V(final observation), used only where the episode was truncated (bootstrapped)
            r_final = policies.value(r_final_obs.transpose(0, 1).reshape(n_agents, -1))
            r_final = r_final.reshape(n_agents, hp.num_steps, n_envs).transpose(0, 1)
        finished_returns, finished_lengths = self._book_episodes(r_rew, r_term | r_trunc, r_time)
        self._book_streams(r_obs, r_act, r_final_obs, r_rew, r_term | r_trunc, r_time)
        with timer.phase("learning"):
            losses = self.agents.update(r_obs, r_act, r_rew, r_term, r_trunc, r_final, self.obs)
        self.updates += 1
        self.env_steps = self.updates * self.steps_per_update
        cc = self.cfg.collect
        if self.updates % cc.flush_every == 0:
            self._flush_buffer(timer)
        if self.updates % cc.curve_every == 0 or self.updates == self.updates_total:
            with timer.phase("storage"):
                curve = torch.where(self.curve_count > 0, self.curve_sum / self.curve_count.clamp(min=1), torch.nan)
                self.writer.append_curve(self.updates * n_envs * hp.num_steps, curve.cpu().numpy())
            self.curve_sum.zero_()
            self.curve_count.zero_()
        if self.updates == self.updates_total:
            self._flush_buffer(timer)
            self.writer.mark_complete()
        # once per update (not per step): the losses and finished episodes go to the host for the loop's log
        return IterationResult(metrics={k: float(v) for k, v in losses.items()},
                               episode_returns=finished_returns.tolist(),
                               episode_lengths=finished_lengths.tolist())

    def _book_episodes(self, rew: torch.Tensor, done: torch.Tensor,
                       time_step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Episode returns of a rollout (all (T, N, B)), without a loop over its steps: adds to the agents'
        learning-curve sums and carries unfinished returns over; returns (returns, lengths) of the episodes
        that ended on training tasks, in step-major order (the loop's episode_return)."""
        steps = rew.shape[0]
        cum = self.ep_return + rew.cumsum(0)  # return since the last episode start before the rollout
        step = torch.arange(steps, device=rew.device).reshape(-1, 1, 1)
        last_done = torch.where(done, step, -1).cummax(0).values  # last episode end at or before t
        prev_done = torch.cat((torch.full_like(last_done[:1], -1), last_done[:-1]))
        base = torch.where(prev_done >= 0, cum.gather(0, prev_done.clamp(min=0)), 0.0)
        ep_return = cum - base  # at each step: the return of the episode it belongs to, so far
        self.curve_sum += (ep_return * done).sum((0, 2))
        self.curve_count += done.sum((0, 2))
        end = last_done[-1]
        self.ep_return = torch.where(end >= 0, cum[-1] - cum.gather(0, end.clamp(min=0)[None])[0], cum[-1])
        shown = done & self.train_agent[None, :, None]  # the loop's episode_return: the source on training tasks
        return ep_return[shown], time_step[shown] + 1

    def _book_streams(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, rew: torch.Tensor,
                      done: torch.Tensor, time_step: torch.Tensor) -> None:
        """Buffer the stored streams' transitions of a rollout (all (T, N, B)) with their keep flags, and
        advance each stream's episode count, first success and keep flag, as a loop over the steps would
        (:func:`keep_episode` decides at each episode end whether the next episode is stored)."""
        cc, steps, idx = self.cfg.collect, rew.shape[0], self.stream_index
        pick = {k: v.reshape(steps, -1)[:, idx] for k, v in (("obs", obs), ("action", action),
                                                              ("next_obs", next_obs), ("reward", rew),
                                                              ("done", done), ("time_step", time_step))}
        s_done, s_success = pick["done"], pick["reward"] > 0
        ended = s_done.long().cumsum(0)
        episode_after = self.stream_episode + ended  # episodes begun after step t
        episode_before = episode_after - s_done.long()
        first_success = s_success.long().argmax(0)  # the first step with a reward (0 if none)
        succeeded = s_success.long().cummax(0).values.bool()
        found_now = episode_before.gather(0, first_success[None])[0]
        found_after = torch.where(self.stream_found_at >= 0, self.stream_found_at,
                                  torch.where(succeeded, found_now, -1))
        keep_next = keep_episode(episode_after, found_after, cc.episode_stride, cc.dense_until_success,
                                 cc.skip_after_success)  # decided at an episode end: store the next one?
        step = torch.arange(steps, device=rew.device).reshape(-1, 1)
        last_done = torch.where(s_done, step, -1).cummax(0).values
        prev_done = torch.cat((torch.full_like(last_done[:1], -1), last_done[:-1]))
        pick["keep"] = torch.where(prev_done >= 0, keep_next.gather(0, prev_done.clamp(min=0)), self.stream_keep)
        end = last_done[-1]
        self.stream_keep = torch.where(end >= 0, keep_next.gather(0, end.clamp(min=0)[None])[0], self.stream_keep)
        self.stream_episode = episode_after[-1]
        self.stream_found_at = found_after[-1]
        for k in BUFFERED:
            self.buffer[k].append(pick[k].T)  # (streams, T)

    def _flush_buffer(self, timer: PhaseTimer | None = None) -> None:
        if not self.buffer["obs"]:
            return
        with timer.phase("storage") if timer is not None else nullcontext():
            self.writer.append(**{k: torch.cat(v, dim=1).cpu().numpy() for k, v in self.buffer.items()})
            for v in self.buffer.values():
                v.clear()

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        raise ConfigError("a collection holds one A2C agent per task; distill it with `rlcli distill`")

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The whole collection state; first writes the buffered transitions to the file, so that the
        history lengths it records are what the file holds."""
        self._flush_buffer()
        self.writer.flush()
        a2c_tensors, groups = self.agents.state()
        tensors = {"a2c": a2c_tensors, "rooms": self.rooms.state(), "obs": self.obs, "ep_return": self.ep_return,
                   "curve_sum": self.curve_sum, "curve_count": self.curve_count,
                   "stream_episode": self.stream_episode, "stream_found_at": self.stream_found_at,
                   "stream_keep": self.stream_keep, "rng": torch.get_rng_state(),
                   "lengths": torch.tensor(self.writer.lengths(), dtype=torch.long)}
        return {"collect": tensors}, {"a2c_param_groups": groups,
                                      "collection": {"updates": self.updates,
                                                     "curve_points": self.writer.curve_points()}}

    def load_state(self, ckpt: Checkpoint) -> None:
        tensors = ckpt.tensors("collect")
        self.agents.load_state(tensors["a2c"], ckpt.documents["a2c_param_groups"])
        self.rooms.load_state(tensors["rooms"])
        self.obs = tensors["obs"].to(self.device)
        for k in ("ep_return", "curve_sum", "curve_count", "stream_episode", "stream_found_at", "stream_keep"):
            setattr(self, k, tensors[k].to(self.device))
        torch.set_rng_state(tensors["rng"].to(torch.uint8))
        saved = ckpt.documents["collection"]
        self.updates = int(saved["updates"])
        self.env_steps = self.updates * self.steps_per_update
        self.writer = HistoryWriter.reopen(self.out, tensors["lengths"].tolist(), int(saved["curve_points"]))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def collect(cfg: Config, out: str | Path, *, reporter: Reporter | None = None, timer: PhaseTimer | None = None,
            callbacks: list[Callable[[int], None]] | None = None, agents: range | None = None) -> CollectResult:
    """Train the source agents and stream their histories into ``out``; resumes an interrupted ``out``.

    Runs :class:`Collection` in the training loop (:func:`rlcli.engine.train.train`) with its run folder
    :func:`collection_run_dir`. Raises ConfigError for bad input (another env, a finished or foreign
    ``out``), CollectionInterrupted after Ctrl-C. Each of ``callbacks`` is called with the env steps done
    (summed over all agents) after every update. ``agents``: collect only these (global) agent indices, a
    shard of the collection (:func:`rlcli.ad.shards.collect_sharded` joins the shards).
    """
    if cfg.env.id != "darkroom":
        raise ConfigError(f"collect supports env 'darkroom' only, got '{cfg.env.id}'")
    out = Path(out)
    run_dir = collection_run_dir(out)
    cc, hp = cfg.collect, cfg.a2c
    config_toml = cfg.to_toml()  # the user's config, stored in the histories file
    # the loop's view of it: env steps summed over all agents, a checkpoint every collect.checkpoint_every
    # updates, no evaluation
    loop_cfg = cfg.copy()
    agent_ids = list(agents) if agents is not None else list(range(len(source_agents(cfg)[0])))
    n_agents = len(agent_ids)
    loop_cfg.run.name = run_dir.name
    steps_per_update = n_agents * hp.num_envs * hp.num_steps
    loop_cfg.run.total_steps = -(-cc.steps_per_agent // (hp.num_envs * hp.num_steps)) * steps_per_update
    loop_cfg.run.checkpoint_every = cc.checkpoint_every * steps_per_update
    loop_cfg.run.eval_every = 0
    loop_cfg.run.tensorboard = False
    # the source agents are tiny tables of logits; bf16 would only coarsen the sampling probabilities the
    # histories are drawn from, so a collection always runs in fp32 (run.precision is for the distill)
    loop_cfg.run.precision = "fp32"
    resume, start_step = None, 0
    if out.exists():
        last = run_dir / CHECKPOINT_LAST
        with HistoryReader(out) as r:
            done_before, collected_with = r.complete, r.config_toml
            held = np.unique(r.histories.agent).tolist()
        if done_before or not last.is_file():
            why = "is a complete collection" if done_before else "exists and has no resume state"
            raise ConfigError(f"'{out}' {why}; choose another --out or delete it")
        if held != agent_ids:
            raise ConfigError(f"'{out}' holds other agents (another --shards?); resume it with the same command "
                              f"and settings, or choose another --out")
        if collected_with != config_toml:
            raise ConfigError(f"'{out}' was collected with another configuration; resume it with the same "
                              f"command and settings, or choose another --out")
        resume, start_step = run_dir, int(read_checkpoint_attrs(last)["step"])
    elif run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= RUN_FOLDER_ENTRIES:
        shutil.rmtree(run_dir)  # the folder of an earlier collection into an --out that is gone
    try:
        result = train(loop_cfg, resume=resume, reporter=reporter, timer=timer, callbacks=callbacks,
                       run_dir=run_dir, algorithm=lambda c, device: Collection(c, device, out, config_toml, agents))
    except TrainingInterrupted as e:
        raise CollectionInterrupted(e.result, out) from None
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # the resume state of a finished collection
    with HistoryReader(out) as r:
        _, returns, _, splits = r.curves()
        num_histories = len(r.histories)
    last = returns[splits == "train", -1] if returns.shape[1] else np.zeros(0)
    return CollectResult(out, run_dir, n_agents, num_histories, result.steps - start_step,
                         result.wall_time, resume is not None,
                         float(np.nanmean(last)) if np.isfinite(last).any() else float("nan"))
