"""Record one evaluation episode to a GIF (Pillow) or MP4 (imageio-ffmpeg, the ``video`` extra)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rlcli.config.fields import ConfigError
from rlcli.envs.registry import make_single_env


def write_video(frames: list[np.ndarray], path: Path, fps: int = 30) -> Path:
    """frames: list of (H, W, 3) uint8 arrays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    elif suffix == ".mp4":
        try:
            with warnings.catch_warnings():  # imageio-ffmpeg 0.3 imports the deprecated pkg_resources
                warnings.simplefilter("ignore")
                import imageio_ffmpeg
        except ModuleNotFoundError as e:  # imageio-ffmpeg itself, or pkg_resources (setuptools) for its 0.3
            raise ConfigError(f"writing .mp4 needs the package '{e.name}'; install the video extra with: "
                              f"pip install 'rlcli[video]'") from None
        # imageio-ffmpeg's own writer (an ffmpeg binary ships with it): its API is the same in 0.3, which
        # procgen's gym3 pins, and in later releases; imageio's ffmpeg plugin needs a newer imageio-ffmpeg
        height, width = frames[0].shape[:2]
        writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, macro_block_size=1,
                                               ffmpeg_log_level="error")
        writer.send(None)  # start the generator
        for f in frames:
            writer.send(np.ascontiguousarray(f))
        writer.close()
    else:
        raise ConfigError(f"video file '{path}' must end in .gif or .mp4")
    return path


def record_episode(act: Callable[[np.ndarray], np.ndarray], env_cfg, path: Path, seed: int,
                   max_steps: int = 10_000) -> Path:
    """Play one episode in the single-env view of ``env_cfg`` and write its frames to ``path``."""
    if path.suffix.lower() not in (".gif", ".mp4"):
        raise ConfigError(f"video file '{path}' must end in .gif or .mp4")
    env = make_single_env(env_cfg, seed, render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
        for _ in range(max_steps):
            action = act(np.asarray(obs)[None])[0]
            obs, _, terminated, truncated, _ = env.step(action)
            frames.append(env.render())
            if terminated or truncated:
                break
    finally:
        env.close()
    return write_video(frames, path)
