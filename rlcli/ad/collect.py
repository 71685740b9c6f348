"""``rlcli.collect(cfg, out)``: learning histories of batched A2C agents on DarkRoom tasks, into HDF5.

The 80 tasks are split by ``run.seed`` into train and held-out test tasks (the split is stored in the file).
Every training task gets ``collect.histories_per_task`` agents with different seeds and every test task
``collect.test_histories_per_task`` (their curves are the A2C baseline of the in-context evaluation; AD
never trains on them). All agents learn at once in one :class:`~rlcli.ad.source_a2c.BatchedA2C`, stepping one
:class:`~rlcli.envs.darkroom.DarkRoomBatch` of (agents x ``a2c.num_envs``) rooms. The first
``collect.streams_per_agent`` env streams of each agent are streamed into the file as histories, keeping
every ``collect.episode_stride``-th episode of each stream (1 = all); with ``collect.dense_until_success``,
every episode up to the stream's first success and every k-th after it (a subsampled history would otherwise
show the goal reached within a few stored episodes, faster than any exploration can find it, which a model
trained on it can only imitate by guessing the training goals); ``collect.skip_after_success`` leaves out
the episodes right after the success, in which the source has not yet learned to return to the goal.

Resume: every ``collect.checkpoint_every`` updates (and on Ctrl-C) the whole collection state -- weights,
Adam state, rooms, RNG, the history lengths written so far -- is saved atomically to ``<out>.resume.h5``.
Running the same command again truncates the histories to those lengths and continues, so an interrupted
collection ends with exactly the file an uninterrupted one writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlcli.config.fields import ConfigError
from rlcli.config.schema import Config
from rlcli.engine.progress import Progress, Reporter
from rlcli.engine.timing import PhaseTimer
from rlcli.envs.darkroom import NUM_ACTIONS, SIZE, DarkRoomBatch, num_tasks, task_goal
from rlcli.storage.histories import HistoryReader, HistorySpec, HistoryWriter


@dataclass
class CollectResult:
    path: Path
    num_agents: int
    num_histories: int
    env_steps: int  # summed over all agents, this call
    wall_time: float  # s, this call
    resumed: bool
    final_train_return: float  # mean of the agents' last learning-curve points (train tasks)

    @property
    def steps_per_second(self) -> float:
        return self.env_steps / max(self.wall_time, 1e-9)


class CollectionInterrupted(Exception):
    """Ctrl-C: the resume state is saved; rerun the same command to continue."""


def split_tasks(seed: int, num_test: int, size: int = SIZE) -> tuple[list[int], list[int]]:
    """(train tasks, test tasks), both sorted; a permutation of the task ids drawn from ``seed``."""
    perm = np.random.default_rng(seed).permutation(num_tasks(size))
    return sorted(perm[num_test:].tolist()), sorted(perm[:num_test].tolist())


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


def resume_path(out: Path) -> Path:
    return out.with_name(out.name + ".resume.h5")


def _env_params(cfg: Config) -> dict:
    from rlcli.envs.darkroom import MAX_STEPS

    return {"id": "darkroom", "size": SIZE, "max_steps": cfg.env.max_episode_steps or MAX_STEPS,
            "terminate_on_goal": cfg.env.terminate_on_goal, "num_actions": NUM_ACTIONS,
            "num_states": SIZE * SIZE}


def collect(cfg: Config, out: str | Path, *, reporter: Reporter | None = None, timer: PhaseTimer | None = None,
            callbacks: list[Callable[[int], None]] | None = None) -> CollectResult:
    """Train the source agents and stream their histories into ``out``; resumes an interrupted ``out``.

    Raises ConfigError for bad input (another env, a finished or foreign ``out``), CollectionInterrupted
    after Ctrl-C. Each of ``callbacks`` is called with the number of updates done after every update.
    """
    from rlcli.ad.source_a2c import BatchedA2C
    from rlcli.engine.seeding import resolve_device, seed_everything
    from rlcli.engine.signals import InterruptFlag
    from rlcli.storage.checkpoint import load_checkpoint, save_checkpoint

    if cfg.env.id != "darkroom":
        raise ConfigError(f"collect supports env 'darkroom' only, got '{cfg.env.id}'")
    cc, hp = cfg.collect, cfg.a2c
    if cc.streams_per_agent > hp.num_envs:
        raise ConfigError(f"collect.streams_per_agent ({cc.streams_per_agent}) must be <= a2c.num_envs "
                          f"({hp.num_envs})")
    out = Path(out)
    reporter, timer = reporter or Reporter(), timer or PhaseTimer()
    device = resolve_device(cfg.run.device)
    if cfg.run.torch_threads:
        torch.set_num_threads(cfg.run.torch_threads)
    seed_everything(cfg.run.seed)
    env_params = _env_params(cfg)

    train_tasks, test_tasks = split_tasks(cfg.run.seed, cc.num_test_tasks)
    used_train = train_tasks[:cc.max_train_tasks] if cc.max_train_tasks else train_tasks
    agent_tasks = [t for t in used_train for _ in range(cc.histories_per_task)]
    agent_tasks += [t for t in test_tasks for _ in range(cc.test_histories_per_task)]
    agent_splits = ["train"] * (len(used_train) * cc.histories_per_task)
    agent_splits += ["test"] * (len(agent_tasks) - len(agent_splits))
    n_agents, n_envs, streams = len(agent_tasks), hp.num_envs, cc.streams_per_agent
    specs = [HistorySpec(agent_tasks[a], agent_splits[a], a, s) for a in range(n_agents) for s in range(streams)]
    stream_index = torch.tensor([a * n_envs + s for a in range(n_agents) for s in range(streams)], device=device)

    agents = BatchedA2C(SIZE * SIZE, NUM_ACTIONS, hp, [cfg.run.seed * 1_000_003 + a for a in range(n_agents)],
                        device)
    goals = torch.tensor([task_goal(t) for t in agent_tasks for _ in range(n_envs)], dtype=torch.long)
    rooms = DarkRoomBatch(goals, SIZE, env_params["max_steps"], env_params["terminate_on_goal"], device)
    obs = rooms.reset().reshape(n_agents, n_envs)
    ep_return = torch.zeros(n_agents, n_envs, device=device)
    curve_sum = torch.zeros(n_agents, device=device)
    curve_count = torch.zeros(n_agents, device=device)
    stream_episode = torch.zeros(len(specs), dtype=torch.long, device=device)  # episodes begun per stream
    stream_found_at = torch.full((len(specs),), -1, dtype=torch.long, device=device)  # first success episode
    stream_keep = torch.ones(len(specs), dtype=torch.bool, device=device)  # store the current episode
    updates_total = -(-cc.steps_per_agent // (n_envs * hp.num_steps))
    updates, resumed = 0, False
    config_toml = cfg.to_toml()
    rpath = resume_path(out)

    if out.exists():
        if not rpath.is_file():
            with HistoryReader(out) as r:
                done_before = r.complete
            why = "is a complete collection" if done_before else "exists and has no resume state"
            raise ConfigError(f"'{out}' {why}; choose another --out or delete it")
        ckpt = load_checkpoint(rpath)
        if ckpt.attrs.get("config") != config_toml:
            raise ConfigError(f"'{out}' was collected with another configuration; resume it with the same "
                              f"command and settings, or choose another --out")
        tensors = ckpt.tensors("collect")
        agents.load_state(tensors["a2c"], ckpt.documents["a2c_param_groups"])
        rooms.load_state(tensors["rooms"])
        obs = tensors["obs"].to(device)
        ep_return, curve_sum, curve_count, stream_episode, stream_found_at, stream_keep = (
            tensors[k].to(device) for k in ("ep_return", "curve_sum", "curve_count", "stream_episode",
                                             "stream_found_at", "stream_keep"))
        torch.set_rng_state(tensors["rng"].to(torch.uint8))
        updates = int(ckpt.attrs["updates"])
        writer = HistoryWriter.reopen(out, tensors["lengths"].tolist(), int(ckpt.attrs["curve_points"]))
        resumed = True
    else:
        writer = HistoryWriter(out, specs, env_params, train_tasks, test_tasks, agent_tasks, agent_splits,
                               config_toml, cc.chunk_size)

    def save_resume_state() -> None:
        with timer.phase("storage"):
            writer.flush()
            a2c_tensors, groups = agents.state()
            tensors = {"a2c": a2c_tensors, "rooms": rooms.state(), "obs": obs, "ep_return": ep_return,
                       "curve_sum": curve_sum, "curve_count": curve_count, "stream_episode": stream_episode,
                       "stream_found_at": stream_found_at, "stream_keep": stream_keep,
                       "rng": torch.get_rng_state(),
                       "lengths": torch.tensor(writer.lengths(), dtype=torch.long)}
            save_checkpoint(rpath, {"collect": tensors},
                            {"algo": "ad", "config": config_toml, "updates": updates,
                             "curve_points": writer.curve_points()}, {"a2c_param_groups": groups})

    buffer: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "action", "next_obs", "reward", "done",
                                                              "time_step", "keep")}

    def flush_buffer() -> None:
        if not buffer["obs"]:
            return
        with timer.phase("storage"):
            writer.append(**{k: torch.stack(v, dim=1).cpu().numpy() for k, v in buffer.items()})
            for v in buffer.values():
                v.clear()

    steps_per_update = n_agents * n_envs * hp.num_steps
    start_updates, start_time = updates, time.perf_counter()
    reporter.start(str(out), updates * steps_per_update, updates_total * steps_per_update)
    recent: list[float] = []
    shape = (hp.num_steps, n_agents, n_envs)
    try:
        with InterruptFlag() as interrupt:
            while updates < updates_total:
                r_obs = torch.empty(shape, dtype=torch.long, device=device)
                r_act = torch.empty_like(r_obs)
                r_term = torch.empty(shape, dtype=torch.bool, device=device)
                r_trunc = torch.empty_like(r_term)
                r_rew, r_final = torch.empty(shape, device=device), torch.zeros(shape, device=device)
                for t in range(hp.num_steps):
                    with timer.phase("inference"):
                        action = agents.act(obs)
                    with timer.phase("env"):
                        time_step = rooms.t.clone()
                        nxt, reward, term, trunc, final_obs = rooms.step(action.reshape(-1))
                    r_obs[t], r_act[t] = obs, action
                    r_rew[t] = reward.reshape(n_agents, n_envs)
                    r_term[t], r_trunc[t] = term.reshape(n_agents, n_envs), trunc.reshape(n_agents, n_envs)
                    if trunc.any():
                        with timer.phase("inference"):
                            r_final[t] = agents.value(final_obs.reshape(n_agents, n_envs))
                    done = r_term[t] | r_trunc[t]
                    ep_return += r_rew[t]
                    curve_sum += (ep_return * done).sum(1)
                    curve_count += done.sum(1)
                    if done.any():
                        recent.extend(ep_return[done].tolist()[:64])
                    ep_return *= ~done
                    buffer["obs"].append(obs.reshape(-1)[stream_index])
                    buffer["action"].append(action.reshape(-1)[stream_index])
                    buffer["next_obs"].append(final_obs[stream_index])
                    buffer["reward"].append(reward[stream_index])
                    buffer["done"].append((term | trunc)[stream_index])
                    buffer["time_step"].append(time_step[stream_index])
                    buffer["keep"].append(stream_keep.clone())
                    stream_found_at = torch.where((reward[stream_index] > 0) & (stream_found_at < 0),
                                                  stream_episode, stream_found_at)
                    stream_done = (term | trunc)[stream_index]
                    stream_episode += stream_done.long()
                    stream_keep = torch.where(stream_done, keep_episode(stream_episode, stream_found_at,
                                                                        cc.episode_stride, cc.dense_until_success,
                                                                        cc.skip_after_success),
                                              stream_keep)
                    obs = nxt.reshape(n_agents, n_envs)
                with timer.phase("learning"):
                    agents.update(r_obs, r_act, r_rew, r_term, r_trunc, r_final, obs)
                updates += 1
                if updates % cc.flush_every == 0:
                    flush_buffer()
                if updates % cc.curve_every == 0 or updates == updates_total:
                    with timer.phase("storage"):
                        curve = torch.where(curve_count > 0, curve_sum / curve_count.clamp(min=1), torch.nan)
                        writer.append_curve(updates * n_envs * hp.num_steps, curve.cpu().numpy())
                    curve_sum.zero_()
                    curve_count.zero_()
                if updates % cc.checkpoint_every == 0 and updates < updates_total:
                    flush_buffer()
                    save_resume_state()
                elapsed = time.perf_counter() - start_time
                sps = (updates - start_updates) * steps_per_update / max(elapsed, 1e-9)
                recent = recent[-1000:]
                reporter.update(Progress(updates * steps_per_update, updates_total * steps_per_update, sps,
                                         float(np.mean(recent)) if recent else None, elapsed, timer.shares()))
                for callback in callbacks or ():
                    callback(updates)
                if interrupt.set and updates < updates_total:
                    flush_buffer()
                    save_resume_state()
                    raise CollectionInterrupted(f"interrupted after {updates}/{updates_total} updates; the "
                                                f"state is saved in {rpath}; rerun the same command to resume")
        flush_buffer()
        writer.mark_complete()
    finally:
        writer.close()
        reporter.stop()
    rpath.unlink(missing_ok=True)
    wall = time.perf_counter() - start_time
    with HistoryReader(out) as r:
        _, returns, _, splits = r.curves()
    last = returns[splits == "train", -1] if returns.shape[1] else np.zeros(0)
    return CollectResult(out, n_agents, len(specs), (updates - start_updates) * steps_per_update, wall, resumed,
                         float(np.nanmean(last)) if np.isfinite(last).any() else float("nan"))
