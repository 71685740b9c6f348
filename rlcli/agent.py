"""``rlcli.load(run_or_checkpoint)``: a trained agent to act with from Python (a notebook, a script).

A run of an ordinary learner (PPO, VAPOR, RND, DQN, ES, A2C, ...) loads as an :class:`Agent`; its
``act`` is exactly the action ``rlcli eval`` takes (the same network, the same observation normalisation,
greedy by default)::

    agent = rlcli.load("runs/ppo-cartpole-baseline-s0-...")  # a run folder (checkpoints/last.h5) or a .h5 file
    env = agent.env(num_envs=8)                               # the run's environment, a gymnasium vector env
    obs, _ = env.reset(seed=0)
    actions = agent.act(obs)                                  # (8,) numpy actions; deterministic=False samples
    obs, reward, terminated, truncated, info = env.step(actions)

An Algorithm Distillation run loads as an :class:`InContextAgent`: it learns *in context*, so it keeps the
transitions it has seen across steps and episodes. After each ``act`` it must be told what that action led
to, with the five values ``env.step`` returned (in that order)::

    agent = rlcli.load("runs/ad-darkroom-...")
    env = agent.env()                                         # one DarkRoom per held-out test task
    obs, _ = env.reset()
    for _ in range(40 * 20):                                  # 40 episodes of 20 steps, one growing context
        result = env.step(agent.act(obs))                     # sampled from the model by default
        agent.observe(*result)                                # obs, reward, terminated, truncated, info
        obs = result[0]
    agent.reset()                                             # forget everything: a fresh context

Loading needs torch and the env packages, imported here on first use; ``import rlcli`` stays light.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np


def _device(name: str | None, saved: str):
    """The torch device to load onto: ``name``, or the run's own (``run.device``), or the CPU when the
    run's device is not on this machine (a GPU-trained run opened on a laptop)."""
    import torch

    from rlcli.engine.seeding import resolve_device

    if name is not None:
        return resolve_device(name)
    if saved == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu")
    return resolve_device(saved)


class Agent:
    """A trained policy. ``act(obs)`` maps a batch of observations to a batch of actions."""

    def __init__(self, algorithm: Any, config: Any, checkpoint: Path, step: int):
        self._algorithm = algorithm
        self.config = config  # the run's resolved Config, as loaded: env.num_envs 1, run.device the one here
        self.algo: str = config.algo
        self.checkpoint = checkpoint  # the .h5 file the weights came from
        self.step = step  # env steps the policy was trained for
        self.device = getattr(algorithm, "device", None)
        env = getattr(algorithm, "env", None)  # the learner's own env tells the shape of one observation
        self._obs_shape = tuple(env.single_observation_space.shape or ()) if env is not None else None

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for ``obs``: a batch (B, *obs_shape) -> (B,) numpy actions; one observation (no batch
        axis) -> one action. ``deterministic=False`` samples (PPO family) or explores with the final
        epsilon (DQN); greedy is what ``rlcli eval`` uses by default."""
        obs = np.asarray(obs)
        single = self._obs_shape is not None and obs.shape == self._obs_shape
        actions = np.asarray(self._algorithm.act(obs[None] if single else obs, deterministic))
        return actions[0] if single else actions

    def env(self, num_envs: int = 1, seed: int | None = None, overrides: list[str] = ()):
        """The run's environment as a gymnasium vector env of ``num_envs`` copies (seeded ``seed``, default
        the run's evaluation seed); ``overrides`` (``env.variation_level=0.5``) change it like ``--set``."""
        from rlcli.config.presets import parse_override
        from rlcli.config.schema import build_config
        from rlcli.engine.seeding import EVAL_SEED_OFFSET
        from rlcli.envs.registry import make_vec_env

        cfg = self.config
        if overrides:
            cfg = build_config(cfg.algo, [cfg.to_dict()] + [parse_override(o) for o in overrides])
        return make_vec_env(cfg.env, cfg.run.seed + EVAL_SEED_OFFSET if seed is None else seed, num_envs)

    def close(self) -> None:
        """Release the envs the learner holds (the agent is unusable afterwards)."""
        self._algorithm.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<rlcli Agent {self.algo} on {self.config.env.id}, {self.step} env steps, "
                f"device {self.device}, from {self.checkpoint}>")


class InContextAgent:
    """An Algorithm Distillation model acting in context on DarkRoom (see the module docstring).

    The context is the transitions since :meth:`reset`, of which the model attends to the most recent
    (between 3/4 of ``config.ad.context_len`` and all of it, re-encoded as training encoded them: see
    :mod:`rlcli.nets.ad_transformer`), exactly as ``rlcli eval`` does; rows of a batch are separate contexts.
    Actions are sampled from the model (at the run's ``ad.temperature``) by default: a greedy in-context
    learner cannot explore.
    """

    def __init__(self, model: Any, config: Any, env_params: dict, tasks: dict, checkpoint: Path, step: int,
                 device: Any, seed: int = 0):
        self.model = model
        self.config = config
        self.algo = "ad"
        self.env_params = env_params  # size, max_steps, terminate_on_goal, num_states, num_actions
        self.tasks: dict[str, list[int]] = tasks  # the run's task split ({"train": [...], "test": [...]})
        self.checkpoint, self.step, self.device = checkpoint, step, device
        self.temperature = float(getattr(config.ad, "temperature", 1.0))  # of the sampling, as rlcli eval's
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Forget every transition (a fresh context); ``seed`` re-seeds the action sampling."""
        import torch

        if seed is not None:
            self.seed = seed
        self._generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self._cache = self.model.new_cache()
        self._time_step = None  # (B,) step within the current episode of each row; set by the first act
        self._pending = None  # the actions (B,) of the last act, until observe

    def act(self, obs: np.ndarray | int, deterministic: bool = False) -> np.ndarray | int:
        """Next action for each row: ``obs`` (B,) cell indices -> (B,) actions (one int for one int).

        Feeds s_t into the context; :meth:`observe` must follow before the next ``act``."""
        import torch

        if self._pending is not None:
            raise RuntimeError("call observe(*env.step(action)) after act, before the next act")
        single = np.ndim(obs) == 0
        states = torch.as_tensor(np.atleast_1d(np.asarray(obs)), dtype=torch.long, device=self.device)
        if self._time_step is None:
            self._time_step = torch.zeros_like(states)
        elif states.shape != self._time_step.shape:
            raise ValueError(f"this context holds {self._time_step.shape[0]} rows, got {states.shape[0]} "
                             f"observations; call reset() to start a new batch")
        with torch.no_grad():
            logits = self.model.step_state(states, self._time_step, self._cache)
        if deterministic:
            action = logits.argmax(-1)
        else:
            probs = torch.softmax(logits.float() / self.temperature, dim=-1)  # the run's ad.temperature
            action = torch.multinomial(probs, 1, generator=self._generator)[:, 0]
        self._pending = action
        out = action.cpu().numpy()
        return int(out[0]) if single else out

    def observe(self, next_obs: np.ndarray | int, reward: np.ndarray | float, terminated: np.ndarray | bool,
                truncated: np.ndarray | bool, info: dict | None = None) -> None:
        """Feed what the last action led to: the five values ``env.step`` returned. With a vector env that
        resets finished episodes itself, the cell an episode ended in comes from ``info["final_obs"]``."""
        import torch

        if self._pending is None:
            raise RuntimeError("observe follows act: call act(obs) first")
        action, self._pending = self._pending, None

        def rows(x: Any, dtype) -> torch.Tensor:
            return torch.as_tensor(np.atleast_1d(np.asarray(x)), dtype=dtype, device=self.device)

        next_state = np.atleast_1d(np.asarray(next_obs)).copy()
        done = np.atleast_1d(np.asarray(terminated)) | np.atleast_1d(np.asarray(truncated))
        if info and "final_obs" in info:  # SAME_STEP autoreset: next_obs of a finished row is the new episode's
            ended = np.asarray(info.get("_final_obs", done), dtype=bool)
            next_state[ended] = np.asarray(info["final_obs"])[ended]
        with torch.no_grad():
            self.model.step_outcome(action, rows(reward, torch.float32).long(), self._time_step, self._cache,
                                    rows(next_state, torch.long) if self.model.cfg.next_state else None)
        self._time_step = torch.where(rows(done, torch.bool), 0, self._time_step + 1)

    def env(self, tasks: list[int] | None = None):
        """A DarkRoom vector env with one room per task (default: the run's held-out test tasks)."""
        from rlcli.envs.darkroom import DarkRoomVectorEnv

        tasks = self.tasks["test"] if tasks is None else list(tasks)
        return DarkRoomVectorEnv(tasks, self.env_params["max_steps"], self.env_params["terminate_on_goal"])

    def close(self) -> None:
        pass

    def __enter__(self) -> InContextAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<rlcli InContextAgent (AD) on darkroom, {self.step} gradient steps, context "
                f"{self.config.ad.context_len} transitions, device {self.device}, from {self.checkpoint}>")


def load(run_or_checkpoint: str | Path, checkpoint: str = "last", device: str | None = None,
         seed: int = 0) -> Agent | InContextAgent:
    """A trained agent from a run folder (its ``checkpoints/<checkpoint>.h5``: ``last`` or ``best``) or a
    checkpoint file, on ``device`` (default: the run's own, or the CPU when that is absent here).

    An AD run gives an :class:`InContextAgent` (``seed`` seeds its action sampling), any other an
    :class:`Agent`. Raises ConfigError for a path that holds no checkpoint, CorruptFileError for a file
    that is not a readable rlcli checkpoint.
    """
    from rlcli.storage.checkpoint import load_checkpoint, read_checkpoint_attrs
    from rlcli.storage.runs import resolve_checkpoint

    path = resolve_checkpoint(run_or_checkpoint, checkpoint)
    attrs = read_checkpoint_attrs(path)
    saved_device = tomllib.loads(attrs["config"]).get("run", {}).get("device", "auto")
    dev = _device(device, saved_device)
    if attrs.get("algo") == "ad":
        from rlcli.ad.distill import load_ad_model

        model, cfg, env_params, tasks = load_ad_model(load_checkpoint(path))
        return InContextAgent(model.to(dev), cfg, env_params, tasks, path, int(attrs.get("step", 0)), dev, seed)
    from rlcli.evaluation.evaluate import load_for_inference

    algorithm, cfg, path, step = load_for_inference(path, checkpoint, device=dev.type)
    return Agent(algorithm, cfg, path, step)
