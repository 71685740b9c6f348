"""``rlcli.evaluate(run)``: play N episodes of a saved policy; optionally record one as GIF/MP4."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcli.config.schema import build_config
from rlcli.engine.progress import CountReporter
from rlcli.storage.checkpoint import read_checkpoint_attrs
from rlcli.storage.runs import resolve_checkpoint


@dataclass
class EvalResult:
    checkpoint: Path
    step: int  # env steps the policy was trained for
    returns: np.ndarray  # (N,)
    lengths: np.ndarray  # (N,)
    video: Path | None = None

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def std_return(self) -> float:
        return float(self.returns.std())


def load_for_inference(run_or_checkpoint: str | Path, checkpoint: str = "last", overrides: list[str] = (),
                       device: str = "cpu"):
    """(algorithm with the saved weights on ``device``, its config, the checkpoint path, its env step).

    The config comes from the checkpoint itself, so a lone ``.h5`` file is enough. ``overrides``
    (``env.variation_level=0.5`` ...) change the evaluation env, not the weights.
    """
    import tomllib

    from rlcli.config.fields import ConfigError
    from rlcli.config.presets import parse_override
    from rlcli.engine.train import build_algorithm, restore_checkpoint

    path = resolve_checkpoint(run_or_checkpoint, checkpoint)
    attrs = read_checkpoint_attrs(path, require=("algo", "config", "step"))  # validated: TOML, types
    saved = tomllib.loads(attrs["config"])
    try:
        cfg = build_config(attrs["algo"], [saved, {"env": {"num_envs": 1}, "run": {"device": device}}]
                           + [parse_override(o) for o in overrides])
    except ConfigError as e:
        raise ConfigError(f"'{path}': its config is not valid: {e}") from None
    algo = build_algorithm(cfg)
    try:
        ckpt = restore_checkpoint(algo, path, attrs["algo"], weights_only=True)
    except BaseException:
        algo.close()
        raise
    return algo, cfg, path, int(ckpt.attrs["step"])


def evaluate(run_or_checkpoint: str | Path, episodes: int = 10, deterministic: bool = True,
             video: str | Path | None = None, checkpoint: str = "last", overrides: list[str] = (),
             seed: int | None = None, reporter: CountReporter | None = None) -> EvalResult:
    """Evaluate the policy of a run folder (its ``checkpoints/<checkpoint>.h5``) or of a checkpoint file.

    ``reporter`` (an :class:`~rlcli.engine.progress.CountReporter`) follows the episodes as they finish."""
    from rlcli.engine.episodes import run_episodes
    from rlcli.engine.seeding import EVAL_SEED_OFFSET

    reporter = reporter or CountReporter()
    algo, cfg, path, step = load_for_inference(run_or_checkpoint, checkpoint, overrides)
    reporter.start("eval episodes", episodes)
    try:
        eval_seed = cfg.run.seed + EVAL_SEED_OFFSET if seed is None else seed
        returns, lengths = run_episodes(lambda obs: algo.act(obs, deterministic), cfg.env, episodes, eval_seed,
                                        on_finished=reporter.update)
        reporter.stop()
        video_path = None
        if video is not None:
            from rlcli.evaluation.video import record_episode

            video_path = record_episode(lambda obs: algo.act(obs, deterministic), cfg.env, Path(video), eval_seed)
    finally:
        reporter.stop()
        algo.close()
    return EvalResult(path, step, returns, lengths, video_path)
