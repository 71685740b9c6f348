"""Atari 2600 games (``atari:<Game>``, e.g. ``atari:MontezumaRevenge``) with the standard preprocessing.

Two backends give the same observations for the same seed:

- ``ale-py`` (:class:`AtariEnv`, one per worker process of a gymnasium ``AsyncVectorEnv`` with shared
  memory): the ALE driven directly, step for step as envpool's C++ ``AtariEnv`` does it;
- ``envpool`` (:class:`EnvpoolAtariVectorEnv`): envpool's thread pool, adapted to SAME_STEP autoreset.

Preprocessing (envpool's and the RND paper's): ``noop_max`` 30 random no-ops then FIRE at reset where the
game has FIRE, the action repeated for 4 frames (rewards summed) with the last two frames max-pooled,
grayscale, 84x84 by area interpolation (cv2's INTER_AREA), the last 4 frames stacked (oldest first), sticky
actions with p = 0.25 (ALE v5 and the RND paper), 27000 agent steps per episode (108k frames). Rewards are
raw game scores. Life loss: ``info["lives"]`` and ``info["life_loss"]`` (True on the step a life was lost;
learners such as RND may end the value's episode there); the episode itself ends at game over.
Montezuma's Revenge also reports ``info["room"]`` (RAM byte 3).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rlcli.envs.legacy_gym import import_legacy_gym
from rlcli.envs.variants import game_from_id, rom_name  # noqa: F401 - game_from_id: importable from here too

FRAME_SKIP = 4
STACK = 4
SIZE = 84
NOOP_MAX = 30
STICKY_ACTION_PROB = 0.25
MAX_EPISODE_STEPS = 27_000
ROOM_RAM_INDEX = {"MontezumaRevenge": 3}


def area_resize_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights of area interpolation: output pixel i averages the source span it covers.

    ``W_rows @ img @ W_cols.T`` reproduces cv2.resize(..., interpolation=INTER_AREA) for shrinking.
    """
    scale = src / dst
    weights = np.zeros((dst, src), dtype=np.float64)
    for i in range(dst):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), src)):
            weights[i, j] = min(hi, j + 1) - max(lo, j)
    return (weights / scale).astype(np.float32)


class AreaResize:
    """Grayscale (H, W) uint8 -> (h, w) uint8 by area interpolation.

    Each output pixel mixes at most ``k`` neighbouring source rows (then columns), so the resize is two
    gathers and weighted sums over (h, k, W) and (h, w, k) arrays; no BLAS call, whose thread pool is slow
    for such small products on a busy machine.
    """

    def __init__(self, src_shape: tuple[int, int], dst_shape: tuple[int, int] = (SIZE, SIZE)):
        self.row_idx, self.row_w = self._sparse(area_resize_matrix(src_shape[0], dst_shape[0]))
        self.col_idx, self.col_w = self._sparse(area_resize_matrix(src_shape[1], dst_shape[1]))

    @staticmethod
    def _sparse(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dst, src) weights -> (dst, k) source indices and their (dst, k) weights."""
        k = int((weights > 0).sum(1).max())
        idx = np.zeros((weights.shape[0], k), np.int64)
        w = np.zeros((weights.shape[0], k), np.float32)
        for i, row in enumerate(weights):
            nz = np.flatnonzero(row)
            idx[i, :len(nz)], w[i, :len(nz)] = nz, row[nz]
        return idx, w

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        rows = (frame[self.row_idx].astype(np.float32) * self.row_w[:, :, None]).sum(1)  # (h, W)
        out = (rows[:, self.col_idx] * self.col_w[None]).sum(2)  # (h, w)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class AtariEnv(gym.Env):
    """One preprocessed Atari game on ale-py; observations (4, 84, 84) uint8."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, game: str, seed: int = 0, render_mode: str | None = None, noop_max: int = NOOP_MAX,
                 sticky_action_prob: float = STICKY_ACTION_PROB, max_episode_steps: int = MAX_EPISODE_STEPS):
        import ale_py
        from ale_py import roms

        from rlcli.config.fields import ConfigError

        self.game, self.render_mode = game, render_mode
        self.noop_max, self.sticky_action_prob = noop_max, sticky_action_prob
        self.max_episode_steps = max_episode_steps or MAX_EPISODE_STEPS
        try:
            self.rom = roms.get_rom_path(rom_name(game))
        except Exception:
            self.rom = None
        if self.rom is None:
            raise ConfigError(f"unknown Atari game '{game}'; ale-py has no ROM '{rom_name(game)}'")
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        self.ale = ale_py.ALEInterface()
        self._load(seed)
        self.action_set = self.ale.getMinimalActionSet()
        self.noop, self.fire = ale_py.Action.NOOP, ale_py.Action.FIRE
        self.fire_reset = self.fire in self.action_set
        h, w = self.ale.getScreenDims()
        self.resize = AreaResize((h, w))
        self.pool = [np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)]  # the last two frames
        self.stack = np.zeros((STACK, SIZE, SIZE), np.uint8)
        self.room_index = ROOM_RAM_INDEX.get(game)
        self.observation_space = gym.spaces.Box(0, 255, (STACK, SIZE, SIZE), np.uint8)
        self.action_space = gym.spaces.Discrete(len(self.action_set))
        self.elapsed = 0
        self.lives = 0

    def _load(self, seed: int) -> None:
        self.ale.setInt("random_seed", int(seed) % (2**31))
        self.ale.setFloat("repeat_action_probability", self.sticky_action_prob)
        self.ale.loadROM(self.rom)
        self.noop_rng = np.random.default_rng(seed)

    def _push(self, frame: np.ndarray, fill: bool) -> np.ndarray:
        small = self.resize(frame)
        if fill:
            self.stack[:] = small
        else:
            self.stack[:-1] = self.stack[1:]
            self.stack[-1] = small
        return self.stack.copy()

    def _info(self, life_loss: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {"lives": self.lives, "life_loss": life_loss}
        if self.room_index is not None:
            info["room"] = int(self.ale.getRAM()[self.room_index])
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._load(seed)
        self.ale.reset_game()
        self.elapsed = 0
        noops = int(self.noop_rng.integers(0, self.noop_max)) + 1 - int(self.fire_reset)
        for _ in range(noops):
            self.ale.act(self.noop)
            if self.ale.game_over():
                self.ale.reset_game()
        if self.fire_reset:
            self.ale.act(self.fire)
        self.ale.getScreenGrayscale(self.pool[0])
        self.lives = self.ale.lives()
        return self._push(self.pool[0], fill=True), self._info()

    def step(self, action):
        reward = 0.0
        game_over = False
        skip = FRAME_SKIP
        while skip > 0 and not game_over:
            reward += self.ale.act(self.action_set[int(action)])
            game_over = self.ale.game_over()
            if skip <= 2:
                self.ale.getScreenGrayscale(self.pool[2 - skip])
            skip -= 1
        if skip == 0:
            np.maximum(self.pool[0], self.pool[1], out=self.pool[0])
        obs = self._push(self.pool[0], fill=False)
        self.elapsed += 1
        lives = self.ale.lives()
        life_loss = 0 < lives < self.lives
        self.lives = lives
        truncated = self.elapsed >= self.max_episode_steps and not game_over
        return obs, float(reward), game_over, truncated, self._info(life_loss)

    def render(self) -> np.ndarray:
        return self.ale.getScreenRGB()


class EnvpoolAtariVectorEnv(VectorEnv):
    """envpool's Atari pool with the same preprocessing, adapted to SAME_STEP autoreset.

    envpool resets a finished env on the *next* step (ignoring its action); here it is reset at once with
    ``reset(env_ids)``, its last observation goes to ``info["final_obs"]``, and ``life_loss`` and ``room``
    are derived from envpool's ``lives`` and ``ram`` infos. Env i is seeded ``seed + i``, as in ale-py.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, game: str, num_envs: int, seed: int = 0, noop_max: int = NOOP_MAX,
                 sticky_action_prob: float = STICKY_ACTION_PROB, max_episode_steps: int = MAX_EPISODE_STEPS):
        import_legacy_gym()
        import envpool

        from rlcli.config.fields import ConfigError

        if f"{game}-v5" not in envpool.list_all_envs():
            raise ConfigError(f"unknown Atari game '{game}'; envpool has no '{game}-v5'")
        self.game, self.num_envs = game, num_envs
        self.kwargs = {"num_envs": num_envs, "noop_max": noop_max, "repeat_action_probability": sticky_action_prob,
                       "max_episode_steps": max_episode_steps or MAX_EPISODE_STEPS, "episodic_life": False,
                       "reward_clip": False, "stack_num": STACK, "frame_skip": FRAME_SKIP,
                       "img_height": SIZE, "img_width": SIZE}
        self.pool = envpool.make_gymnasium(f"{game}-v5", seed=seed, **self.kwargs)
        self.seed = seed
        self.single_observation_space = gym.spaces.Box(0, 255, (STACK, SIZE, SIZE), np.uint8)
        self.single_action_space = gym.spaces.Discrete(int(self.pool.action_space.n))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.room_index = ROOM_RAM_INDEX.get(game)
        self.lives = np.zeros(num_envs, np.int64)
        self.all_ids = np.arange(num_envs)

    def _infos(self, raw: dict, life_loss: np.ndarray) -> dict[str, Any]:
        info: dict[str, Any] = {"lives": np.asarray(raw["lives"]), "life_loss": life_loss}
        if self.room_index is not None and "ram" in raw:
            info["room"] = np.asarray(raw["ram"])[:, self.room_index].astype(np.int64)
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None and seed != self.seed:
            import_legacy_gym()
            import envpool

            self.pool.close()
            self.pool = envpool.make_gymnasium(f"{self.game}-v5", seed=seed, **self.kwargs)
            self.seed = seed
        obs, raw = self.pool.reset()
        self.lives = np.asarray(raw["lives"]).astype(np.int64)
        return obs, self._infos(raw, np.zeros(self.num_envs, bool))

    def step(self, actions):
        obs, reward, terminated, truncated, raw = self.pool.step(np.asarray(actions, dtype=np.int32), self.all_ids)
        lives = np.asarray(raw["lives"]).astype(np.int64)
        life_loss = (lives > 0) & (lives < self.lives)
        self.lives = lives
        info = self._infos(raw, life_loss)
        done = terminated | truncated
        if done.any():
            ids = np.flatnonzero(done)
            info["final_obs"] = np.empty(self.num_envs, dtype=object)  # one (4, 84, 84) array per finished env
            for i in ids:
                info["final_obs"][i] = obs[i]
            info["_final_obs"] = done
            obs = obs.copy()
            new_obs, new_raw = self.pool.reset(ids)
            obs[ids] = new_obs
            self.lives[ids] = np.asarray(new_raw["lives"])
            info["lives"][ids] = self.lives[ids]
            if "room" in info and "ram" in new_raw:
                info["room"][ids] = np.asarray(new_raw["ram"])[:, self.room_index]
        return obs, np.asarray(reward, np.float32), terminated.astype(bool), truncated.astype(bool), info

    def close_extras(self, **kwargs) -> None:
        self.pool.close()


def make_atari_env(game: str, seed: int, render_mode: str | None = None, max_episode_steps: int = 0) -> AtariEnv:
    return AtariEnv(game, seed, render_mode, max_episode_steps=max_episode_steps)


def make_atari_vec(env_cfg, num_envs: int, seed: int) -> VectorEnv:
    """``env.backend``: envpool, ale-py, or auto (envpool when it is installed)."""
    game = game_from_id(env_cfg.id)
    backend = env_cfg.backend
    if backend == "auto":
        try:
            import_legacy_gym()
            import envpool  # noqa: F401

            backend = "envpool"
        except ModuleNotFoundError:
            backend = "ale-py"
    if backend == "envpool":
        return EnvpoolAtariVectorEnv(game, num_envs, seed, max_episode_steps=env_cfg.max_episode_steps)
    AtariEnv(game)  # fail here, in the main process, on an unknown game
    fns = [partial(make_atari_env, game, seed + i, None, env_cfg.max_episode_steps) for i in range(num_envs)]
    if num_envs == 1:
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return gym.vector.AsyncVectorEnv(fns, shared_memory=True, autoreset_mode=AutoresetMode.SAME_STEP)
