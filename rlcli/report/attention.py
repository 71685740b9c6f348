"""Attention maps of the explorative-attention ViT: where the exploration and exploitation tokens look.

``rlcli eval RUN --attention out.png`` plays the saved greedy policy for a while and draws, for a few
frames, the newest 84x84 frame with the last block's attention of the exploration token (left) and of the
exploitation token (right) over the image patches, as the seed paper's ladders-vs-skulls picture does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rlcli.config.fields import ConfigError


def collect_attention(run_or_checkpoint: str | Path, frames: int = 4, steps: int = 200, checkpoint: str = "last",
                      seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Play up to ``steps`` greedy steps; returns (frames (F, H, W) uint8, maps (F, 2, gh, gw)) at ``frames``
    evenly spaced steps. Raises ConfigError when the run's policy has no attention maps."""
    import torch

    from rlcli.engine.seeding import EVAL_SEED_OFFSET
    from rlcli.envs.registry import make_single_env
    from rlcli.evaluation.evaluate import load_for_inference

    algo, cfg, _, _ = load_for_inference(run_or_checkpoint, checkpoint)
    try:
        policy = algo.policy
        if not hasattr(policy, "attention_maps"):
            raise ConfigError(f"--attention needs a policy with attention maps (vit-explorative); this run "
                              f"uses '{cfg.policy.name}'")
        env = make_single_env(cfg.env, cfg.run.seed + EVAL_SEED_OFFSET if seed is None else seed)
        try:
            obs, _ = env.reset(seed=cfg.run.seed + EVAL_SEED_OFFSET if seed is None else seed)
            observations = [np.asarray(obs)]
            for _ in range(steps - 1):
                obs, _, terminated, truncated, _ = env.step(int(algo.act(np.asarray(obs)[None])[0]))
                observations.append(np.asarray(obs))
                if terminated or truncated:
                    break
        finally:
            env.close()
        picks = np.linspace(0, len(observations) - 1, min(frames, len(observations))).round().astype(int)
        batch = torch.as_tensor(np.stack([observations[i] for i in picks]), device=algo.device)
        policy.eval()
        maps = policy.attention_maps(batch).cpu().numpy()
        return batch[:, -1].cpu().numpy(), maps
    finally:
        algo.close()


def draw_attention(frames: np.ndarray, maps: np.ndarray, out: str | Path) -> Path:
    """One row per frame: the frame, the exploration token's attention, the exploitation token's attention
    (each map upsampled over the frame, normalised to its maximum)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise ConfigError(f"attention figure '{out}' must end in .png, .pdf or .svg")
    n = len(frames)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.6 * n), squeeze=False)
    h, w = frames.shape[1:]
    for row in range(n):
        axes[row, 0].imshow(frames[row], cmap="gray", vmin=0, vmax=255)
        for col, (title, cmap) in enumerate([("exploration token", "viridis"), ("exploitation token", "magma")], 1):
            m = maps[row, col - 1]
            axes[row, col].imshow(frames[row], cmap="gray", vmin=0, vmax=255)
            axes[row, col].imshow(m / max(float(m.max()), 1e-12), cmap=cmap, alpha=0.6, extent=(0, w, h, 0),
                                  interpolation="nearest")
            if row == 0:
                axes[row, col].set_title(title)
        if row == 0:
            axes[row, 0].set_title("frame")
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def attention_figure(run_or_checkpoint: str | Path, out: str | Path, frames: int = 4, checkpoint: str = "last",
                     seed: int | None = None) -> Path:
    """``rlcli eval RUN --attention out.png``: collect the maps of a few frames and draw them."""
    frame_arr, maps = collect_attention(run_or_checkpoint, frames, checkpoint=checkpoint, seed=seed)
    return draw_attention(frame_arr, maps, out)
