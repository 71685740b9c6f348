"""Super Mario Bros (``mario``, ``mario:SuperMarioBros-1-1-v0``) from gym-super-mario-bros 7.4.

gym-super-mario-bros and nes-py speak the old gym API (``reset() -> obs``, ``step -> (obs, reward, done,
info)``); :class:`MarioEnv` is the one adapter to gymnasium. It builds ``SuperMarioBrosEnv`` directly
(gym.make's wrappers expect the new step API and fail on this env), maps the agent's discrete action to a
button combination of ``env.action_set`` (SIMPLE_MOVEMENT, COMPLEX_MOVEMENT or RIGHT_ONLY, as nes-py's
JoypadSpace does) and preprocesses frames as for Atari: the action repeated 4 frames (rewards summed, the
last two frames max-pooled), grayscale, 84x84 by area interpolation, 4 frames stacked. The episode ends at
game over (or at the flag of a single-level id); ``info["life_loss"]`` marks a lost life and
``info["x_pos"]`` the distance reached.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from rlcli.config.fields import ConfigError
from rlcli.envs.atari import FRAME_SKIP, SIZE, STACK, AreaResize
from rlcli.envs.legacy_gym import import_legacy_gym

ROM_MODES = ("vanilla", "downsample", "pixel", "rectangle")  # SuperMarioBros-...-v0 to -v3
GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def action_buttons(action_set: str) -> list[list[str]]:
    import_legacy_gym()
    from gym_super_mario_bros import actions

    return {"simple": actions.SIMPLE_MOVEMENT, "complex": actions.COMPLEX_MOVEMENT,
            "right_only": actions.RIGHT_ONLY}[action_set]


def parse_mario_id(env_id: str) -> tuple[str, tuple[int, int] | None]:
    """``mario`` -> ("vanilla", None) (the whole game); ``mario:SuperMarioBros-4-2-v1`` -> ("downsample", (4, 2))."""
    name = env_id.split(":", 1)[1] if ":" in env_id else "SuperMarioBros-v0"
    m = re.fullmatch(r"SuperMarioBros(?:-(\d)-(\d))?-v([0-3])", name)
    if not m:
        raise ConfigError(f"unknown Mario environment '{env_id}'; use mario, mario:SuperMarioBros-v0 or "
                          f"mario:SuperMarioBros-<world>-<stage>-v<0-3>")
    target = (int(m.group(1)), int(m.group(2))) if m.group(1) else None
    return ROM_MODES[int(m.group(3))], target


class MarioEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, env_id: str = "mario", action_set: str = "simple", render_mode: str | None = None,
                 max_episode_steps: int = 0):
        import_legacy_gym()
        from gym_super_mario_bros.smb_env import SuperMarioBrosEnv

        rom_mode, target = parse_mario_id(env_id)
        self.nes = SuperMarioBrosEnv(rom_mode=rom_mode, target=target)
        self.buttons = action_buttons(action_set)
        self.action_bytes = [self._button_byte(combo) for combo in self.buttons]
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        h, w, _ = self.nes.observation_space.shape
        self.resize = AreaResize((h, w))
        self.stack = np.zeros((STACK, SIZE, SIZE), np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, (STACK, SIZE, SIZE), np.uint8)
        self.action_space = gym.spaces.Discrete(len(self.buttons))
        self.life = 0
        self.elapsed = 0

    @staticmethod
    def _button_byte(combo: list[str]) -> int:
        """A list of buttons -> the NES controller byte (nes-py's JoypadSpace bitmap)."""
        from nes_py.wrappers import JoypadSpace

        byte = 0
        for button in combo:
            byte |= JoypadSpace._button_map[button]
        return byte

    @staticmethod
    def _gray(frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) RGB -> (H, W) uint8 luminance."""
        gray = frame[..., 0] * GRAY_WEIGHTS[0] + frame[..., 1] * GRAY_WEIGHTS[1] + frame[..., 2] * GRAY_WEIGHTS[2]
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        frame = self.nes.reset()  # the NES is deterministic: the seed changes nothing
        self.stack[:] = self.resize(self._gray(frame))
        self.life = int(self.nes._life)
        self.elapsed = 0
        return self.stack.copy(), {"life_loss": False, "x_pos": int(self.nes._x_position)}

    def step(self, action):
        reward, done, info = 0.0, False, {}
        grays = []  # the last two frames (one if the game ended on the first)
        for i in range(FRAME_SKIP):
            frame, r, done, info = self.nes.step(self.action_bytes[int(action)])
            reward += r
            if i >= FRAME_SKIP - 2 or done:
                grays.append(self._gray(frame))
            if done:
                break
        top = grays[-1] if len(grays) == 1 else np.maximum(grays[-2], grays[-1])
        self.stack[:-1] = self.stack[1:]
        self.stack[-1] = self.resize(top)
        self.elapsed += 1
        life = int(info.get("life", self.life))
        life_loss = life < self.life and not done
        self.life = life
        truncated = bool(self.max_episode_steps) and self.elapsed >= self.max_episode_steps and not done
        out: dict[str, Any] = {"life_loss": life_loss, "x_pos": int(info.get("x_pos", 0)),
                               "flag_get": bool(info.get("flag_get", False))}
        return self.stack.copy(), float(reward), bool(done), truncated, out

    def render(self) -> np.ndarray:
        return self.nes.screen.copy()

    def close(self) -> None:
        self.nes.close()


def make_mario_env(env_cfg, seed: int = 0, render_mode: str | None = None) -> MarioEnv:
    return MarioEnv(env_cfg.id, env_cfg.action_set, render_mode, env_cfg.max_episode_steps)


def _make(env_id: str, action_set: str, max_episode_steps: int) -> MarioEnv:
    return MarioEnv(env_id, action_set, None, max_episode_steps)


def make_mario_vec(env_cfg, num_envs: int, seed: int) -> VectorEnv:
    """``num_envs`` Mario games in worker processes (gymnasium AsyncVectorEnv with shared memory)."""
    parse_mario_id(env_cfg.id)
    action_buttons(env_cfg.action_set)  # a missing package fails here, in the main process
    fns = [partial(_make, env_cfg.id, env_cfg.action_set, env_cfg.max_episode_steps) for _ in range(num_envs)]
    if num_envs == 1:
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return gym.vector.AsyncVectorEnv(fns, shared_memory=True, autoreset_mode=AutoresetMode.SAME_STEP)
