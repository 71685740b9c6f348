"""Observation tokenizers and a perceiver-style latent encoder with consistent dropout.

Tokenisation (``policy.perceiver_tokenizer``; ``auto`` decides from the observation shape):

- ``vector`` (1-D observations such as CartPole's 4 numbers, or any shape with
  ``perceiver_tokenizer = "vector"``): the observation is flattened to F features and feature f becomes the token ``x_f * W_f + b_f`` with a
  learned (embed_dim,) weight and bias per feature index, so a token says both which feature it is and its
  value. F tokens.
- ``grid`` (2-D or 3-D observations whose spatial sides are both <= 16, such as MiniGrid's 7 x 7 x 3
  object/colour/state grid): every cell becomes a token, a linear map of its C channel values (raw, not
  rescaled) plus a learned embedding of the cell's position. H * W tokens.
- ``patches`` (larger images such as 64 x 64 x 3 Procgen frames or 4 x 84 x 84 Atari stacks): the image is
  cut into ``policy.perceiver_patch_size`` square patches (zero-padded at the right and bottom to a whole
  number of patches), each patch flattened and linearly projected (a strided convolution), plus a learned position
  embedding per patch; uint8 pixels are scaled to [0, 1]. ceil(H / P) * ceil(W / P) tokens.

Layout: a 3-D observation is channels-first (C, H, W) when its first side is smaller than its last
(Atari's 4 x 84 x 84), channels-last (H, W, C) otherwise (MiniGrid, Procgen); a 2-D one is one channel.

Encoder (Jaegle et al. 2021, "Perceiver"): ``policy.perceiver_latents`` learned latent vectors cross-attend to the tokens,
then ``policy.perceiver_layers`` latent self-attention layers follow. Every layer is a pre-LayerNorm residual block
``x += drop(out_proj(attention(LN(x), ...)))``, ``x += drop(MLP(LN(x)))`` with :class:`ConsistentDropout`
after the attention output projection and after the MLP output (masks of shape (latents, dim)).
The output is the mean of the final latents after a LayerNorm: (B, embed_dim).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rlcli.config.fields import ConfigError
from rlcli.nets.consistent_dropout import ConsistentDropout

GRID_MAX_SIDE = 16  # auto tokenizer: spatial sides up to this are grids (one token per cell), larger are images


def image_layout(obs_shape: tuple[int, ...]) -> tuple[int, int, int, bool]:
    """(C, H, W, channels_first) of a 2-D or 3-D observation shape (see the module docstring)."""
    if len(obs_shape) == 2:
        return 1, obs_shape[0], obs_shape[1], False
    if len(obs_shape) == 3:
        if obs_shape[0] < obs_shape[-1]:
            return obs_shape[0], obs_shape[1], obs_shape[2], True
        return obs_shape[2], obs_shape[0], obs_shape[1], False
    raise ConfigError(f"policy.perceiver_tokenizer grid/patches needs a 2-D or 3-D observation, got shape "
                      f"{obs_shape}; use policy.perceiver_tokenizer=vector")


def choose_tokenizer(obs_shape: tuple[int, ...], tokenizer: str = "auto") -> str:
    if tokenizer != "auto":
        return tokenizer
    if len(obs_shape) <= 1:
        return "vector"
    if len(obs_shape) in (2, 3):
        _, h, w, _ = image_layout(obs_shape)
        return "grid" if max(h, w) <= GRID_MAX_SIDE else "patches"
    return "vector"


class Tokenizer(nn.Module):
    """(B, *obs_shape) observations -> (B, num_tokens, embed_dim) tokens, per the module docstring."""

    def __init__(self, obs_shape: tuple[int, ...], kind: str, embed_dim: int, patch_size: int = 8,
                 scale: float = 1.0):
        super().__init__()
        self.kind, self.obs_shape, self.scale = kind, tuple(obs_shape), scale
        if kind == "vector":
            n = math.prod(obs_shape)
            self.weight = nn.Parameter(torch.randn(n, embed_dim) * 0.5)
            self.bias = nn.Parameter(torch.randn(n, embed_dim) * 0.5)
        elif kind == "grid":
            c, h, w, self.channels_first = image_layout(self.obs_shape)
            n = h * w
            self.proj = nn.Linear(c, embed_dim)
            self.pos = nn.Parameter(torch.randn(n, embed_dim) * 0.02)
        elif kind == "patches":
            c, h, w, self.channels_first = image_layout(self.obs_shape)
            self.patch_size = patch_size
            self.pad = (0, -w % patch_size, 0, -h % patch_size)
            n = math.ceil(h / patch_size) * math.ceil(w / patch_size)
            self.proj = nn.Conv2d(c, embed_dim, kernel_size=patch_size, stride=patch_size)
            self.pos = nn.Parameter(torch.randn(n, embed_dim) * 0.02)
        else:
            raise ValueError(f"unknown tokenizer '{kind}'")
        self.num_tokens = n

    def _channels_first(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() * self.scale
        if len(self.obs_shape) == 2:
            return x.unsqueeze(1)
        return x if self.channels_first else x.permute(0, 3, 1, 2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.kind == "vector":
            x = obs.reshape(obs.shape[0], -1).float() * self.scale
            return x.unsqueeze(-1) * self.weight + self.bias
        x = self._channels_first(obs)  # (B, C, H, W)
        if self.kind == "grid":
            return self.proj(x.flatten(2).transpose(1, 2)) + self.pos
        x = self.proj(F.pad(x, self.pad))  # (B, D, H / P, W / P)
        return x.flatten(2).transpose(1, 2) + self.pos


class AttentionBlock(nn.Module):
    """Pre-LN residual block: (cross- or self-) attention then an MLP, each followed by consistent dropout."""

    def __init__(self, dim: int, heads: int, num_latents: int, dropout_p: float, cross: bool):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"policy.perceiver_heads ({heads}) must divide policy.perceiver_dim ({dim})")
        self.heads, self.cross = heads, cross
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim) if cross else None
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.attn_dropout = ConsistentDropout(dropout_p, (num_latents, dim))
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.mlp_dropout = ConsistentDropout(dropout_p, (num_latents, dim))

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None, attn_mask: torch.Tensor | None,
                mlp_mask: torch.Tensor | None) -> torch.Tensor:
        """x: latents (B, L, D); tokens: (B, N, D) for cross-attention, None for self-attention."""
        b, n_q, d = x.shape
        h = self.norm_q(x)
        context = self.norm_kv(tokens) if self.cross else h
        q = self.q(h).view(b, n_q, self.heads, d // self.heads).transpose(1, 2)
        k, v = self.kv(context).view(b, context.shape[1], 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n_q, d)
        x = x + self.attn_dropout(self.out_proj(a), attn_mask)
        return x + self.mlp_dropout(self.mlp(self.norm_mlp(x)), mlp_mask)


class PerceiverEncoder(nn.Module):
    """Tokens -> learned latents (cross-attention, then ``num_layers`` self-attention layers) -> (B, dim)."""

    def __init__(self, tokenizer: Tokenizer, dim: int, num_latents: int, num_layers: int, heads: int,
                 dropout_p: float):
        super().__init__()
        self.tokenizer = tokenizer
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * 0.02)
        self.blocks = nn.ModuleList(
            [AttentionBlock(dim, heads, num_latents, dropout_p, cross=i == 0) for i in range(1 + num_layers)])
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def dropouts(self) -> dict[str, ConsistentDropout]:
        """Mask name -> dropout layer, in forward order."""
        out = {}
        for i, block in enumerate(self.blocks):
            out[f"encoder.{i}.attn"] = block.attn_dropout
            out[f"encoder.{i}.mlp"] = block.mlp_dropout
        return out

    def forward(self, obs: torch.Tensor, masks: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = self.tokenizer(obs)
        x = self.latents.expand(obs.shape[0], -1, -1)
        for i, block in enumerate(self.blocks):
            x = block(x, tokens if block.cross else None, masks.get(f"encoder.{i}.attn"),
                      masks.get(f"encoder.{i}.mlp"))
        return self.norm(x).mean(dim=1)
