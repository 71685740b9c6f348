"""``--policy vit-explorative``: a ViT with an exploration token and an exploitation token.

The frame stack (C, H, W), scaled to [0, 1], is cut into ``p x p`` patches, each embedded into a
``dim``-wide token; two learnable tokens are prepended, exploration first, then exploitation, and learned
position embeddings added. After ``depth`` pre-norm transformer blocks:

- the exploration token's output feeds the intrinsic value head,
- the exploitation token's output feeds the extrinsic value head,
- their element-wise sum feeds the policy head.

The transformer is written here (about 40 lines) rather than taken from vit-pytorch: it is not installed,
and the attention maps of the two tokens are needed for ``rlcli eval --attention``; the blocks use
``scaled_dot_product_attention`` and compute explicit weights only when asked for them.
"""

from __future__ import annotations

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn

from rlcli.config.fields import ConfigError
from rlcli.nets.dual_value import DualValueActorCritic
from rlcli.nets.mlp import layer_init

EXPLORE, EXPLOIT = 0, 1  # token positions


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, N, D) -> (B, N, D), and the (B, heads, N, N) attention weights when ``need_weights``."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = None
        if need_weights:
            weights = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(-1)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d)), weights


class Block(nn.Module):
    """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attn(self.norm1(x), need_weights)
        x = x + attended
        return x + self.mlp(self.norm2(x)), weights


class ExplorativeViT(DualValueActorCritic):
    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, patch_size: int = 12, dim: int = 128,
                 depth: int = 2, heads: int = 4, mlp_dim: int = 256):
        super().__init__()
        c, h, w = obs_shape
        if h % patch_size or w % patch_size:
            raise ConfigError(f"policy.vit_patch_size={patch_size} must divide the frame size {h}x{w}")
        if dim % heads:
            raise ConfigError(f"policy.vit_heads={heads} must divide policy.vit_dim={dim}")
        self.grid = (h // patch_size, w // patch_size)
        # a stride-p convolution embeds each p x p patch linearly, like ViT's patch projection
        self.patch_embed = nn.Conv2d(c, dim, patch_size, stride=patch_size)
        self.explore_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.exploit_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embedding = nn.Parameter(torch.randn(1, 2 + self.grid[0] * self.grid[1], dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.actor = layer_init(nn.Linear(dim, n_actions), gain=0.01)
        self.critic_ext = layer_init(nn.Linear(dim, 1), gain=1.0)
        self.critic_int = layer_init(nn.Linear(dim, 1), gain=1.0)

    def encode(self, obs: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, C, H, W) uint8 -> token outputs (B, 2 + patches, dim), and the last block's attention weights."""
        x = self.patch_embed(obs.float() / 255.0).flatten(2).transpose(1, 2)  # (B, patches, dim)
        b = x.shape[0]
        x = torch.cat([self.explore_token.expand(b, -1, -1), self.exploit_token.expand(b, -1, -1), x], 1)
        x = x + self.pos_embedding
        weights = None
        for i, block in enumerate(self.blocks):
            x, weights = block(x, need_weights and i == len(self.blocks) - 1)
        return self.norm(x), weights

    def heads(self, obs):
        tokens, _ = self.encode(obs)
        explore, exploit = tokens[:, EXPLORE], tokens[:, EXPLOIT]
        return (self.actor(explore + exploit), self.critic_ext(exploit).squeeze(-1),
                self.critic_int(explore).squeeze(-1))

    @torch.no_grad()
    def attention_maps(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, 2, grid_h, grid_w): the last block's attention (mean over heads) of the exploration token
        (channel 0) and the exploitation token (channel 1) over the image patches; each map sums to <= 1."""
        _, weights = self.encode(obs, need_weights=True)
        maps = weights.mean(1)[:, [EXPLORE, EXPLOIT], 2:]  # (B, 2, patches)
        return maps.reshape(obs.shape[0], 2, *self.grid)


def _factory(policy_cfg, obs_space: gym.Space, action_space: gym.Space) -> ExplorativeViT:
    if len(obs_space.shape) != 3:
        raise ConfigError(f"policy 'vit-explorative' needs image observations (C, H, W), got shape "
                          f"{obs_space.shape}")
    return ExplorativeViT(obs_space.shape, int(action_space.n), policy_cfg.vit_patch_size, policy_cfg.vit_dim,
                          policy_cfg.vit_depth, policy_cfg.vit_heads, policy_cfg.vit_mlp_dim)

