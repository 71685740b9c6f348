"""``--policy vit-consistent-dropout``: a perceiver encoder and an actor MLP with consistent dropout.

After the seed document 000 (metta's ViTConsistentDropout policy) and Hausknecht & Wagener 2022:

- encoder: :class:`~rlcli.nets.perceiver.PerceiverEncoder` over the observation's tokens (how vectors,
  MiniGrid grids and images become tokens is in rlcli/nets/perceiver.py), consistent dropout with
  p = ``policy.dropout_p`` after the attention output projection and after the MLP output of every layer;
- actor: an MLP (``policy.hidden_sizes``, ``policy.activation``) with consistent dropout after each hidden
  layer, then the action logits;
- critic: a plain MLP of the same sizes on the same encoder output, with no dropout of its own. The encoder
  is shared, so the value sees the encoder's masks of the transition.

Masks. With ``policy.consistent_dropout`` (the default) every dropout site declares its boolean keep-mask in
``experience_spec()`` (``dropout_mask.<site>``, shape (perceiver_latents, perceiver_dim) for encoder sites and
(width,) for actor sites); ``sample_extras(B)`` draws one independent mask per environment per rollout step,
the collector stores it with the transition, and PPO/VAPOR pass it back in every epoch of the update, so
pi_old and pi_new are the same sub-network. A new step, a new episode or another environment never reuses
a mask. A forward pass in training mode with no stored mask (bootstrapping values at truncation and at the
rollout's end) draws fresh masks, as the rollout's stored values did. With ``consistent_dropout = false``
nothing is stored and every forward pass draws fresh masks (ordinary dropout). In eval mode
(``policy.eval()``, used by evaluation and ``rlcli eval``) dropout is a no-op; ``rlcli eval --mc-dropout K``
keeps it on and samples K masks per step (rlcli/evaluation/mc_dropout.py).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlcli.nets.consistent_dropout import ConsistentDropout
from rlcli.nets.mlp import ACTIVATIONS, layer_init, mlp
from rlcli.nets.perceiver import PerceiverEncoder, Tokenizer, choose_tokenizer
from rlcli.nets.policies import ActorCritic, TensorSpec

MASK_PREFIX = "dropout_mask."


class DropoutMLP(nn.Module):
    """in_dim -> hidden_sizes (activation, then consistent dropout) -> out_dim."""

    def __init__(self, in_dim: int, hidden_sizes: list[int], out_dim: int, activation: str, dropout_p: float,
                 out_gain: float):
        super().__init__()
        self.layers = nn.ModuleList()
        self.dropout = nn.ModuleList()
        last = in_dim
        for width in hidden_sizes:
            self.layers.append(layer_init(nn.Linear(last, width)))
            self.dropout.append(ConsistentDropout(dropout_p, (width,)))
            last = width
        self.act = ACTIVATIONS[activation]()
        self.head = layer_init(nn.Linear(last, out_dim), gain=out_gain)

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor | None]) -> torch.Tensor:
        for layer, drop, mask in zip(self.layers, self.dropout, masks, strict=True):
            x = drop(self.act(layer(x)), mask)
        return self.head(x)


class ViTConsistentDropout(ActorCritic):
    """Perceiver encoder + dropout actor + plain critic; ``forward(obs, extras) -> (logits (B, A), value (B,))``."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, hidden_sizes: list[int], activation: str,
                 dropout_p: float = 0.2, consistent: bool = True, tokenizer: str = "auto", patch_size: int = 8,
                 embed_dim: int = 64, num_latents: int = 8, num_layers: int = 1, num_heads: int = 4,
                 obs_scale: float = 1.0):
        super().__init__()
        self.consistent = consistent
        kind = choose_tokenizer(tuple(obs_shape), tokenizer)
        tok = Tokenizer(tuple(obs_shape), kind, embed_dim, patch_size,
                        scale=obs_scale if kind == "patches" else 1.0)
        self.encoder = PerceiverEncoder(tok, embed_dim, num_latents, num_layers, num_heads, dropout_p)
        self.actor = DropoutMLP(embed_dim, hidden_sizes, n_actions, activation, dropout_p, out_gain=0.01)
        self.critic = mlp(embed_dim, hidden_sizes, 1, activation, out_gain=1.0)
        self._sites: dict[str, ConsistentDropout] = {
            **self.encoder.dropouts(), **{f"actor.{i}": d for i, d in enumerate(self.actor.dropout)}}

    def dropout_sites(self) -> dict[str, ConsistentDropout]:
        """Site name -> dropout layer (encoder layers, then actor hidden layers)."""
        return dict(self._sites)

    def experience_spec(self) -> dict[str, TensorSpec]:
        if not self.consistent:
            return {}
        return {MASK_PREFIX + name: TensorSpec(d.shape, torch.bool) for name, d in self._sites.items()}

    def sample_extras(self, batch_size: int) -> dict[str, torch.Tensor]:
        if not self.consistent:
            return {}
        device = self.encoder.latents.device
        return {MASK_PREFIX + name: d.sample_mask(batch_size, device) for name, d in self._sites.items()}

    def forward(self, obs: torch.Tensor, extras: dict[str, torch.Tensor] | None = None):
        masks = {k.removeprefix(MASK_PREFIX): v for k, v in (extras or {}).items() if k.startswith(MASK_PREFIX)}
        z = self.encoder(obs, masks)
        logits = self.actor(z, [masks.get(f"actor.{i}") for i in range(len(self.actor.layers))])
        return logits, self.critic(z).squeeze(-1)


def _factory(policy_cfg, obs_space: gym.Space, action_space: gym.Space) -> ViTConsistentDropout:
    shape = obs_space.shape if obs_space.shape else (1,)
    is_pixels = isinstance(obs_space, gym.spaces.Box) and obs_space.dtype == np.uint8
    return ViTConsistentDropout(
        tuple(shape), int(action_space.n), policy_cfg.hidden_sizes, policy_cfg.activation,
        dropout_p=policy_cfg.dropout_p, consistent=policy_cfg.consistent_dropout,
        tokenizer=policy_cfg.perceiver_tokenizer, patch_size=policy_cfg.perceiver_patch_size, embed_dim=policy_cfg.perceiver_dim,
        num_latents=policy_cfg.perceiver_latents, num_layers=policy_cfg.perceiver_layers,
        num_heads=policy_cfg.perceiver_heads,
        obs_scale=1.0 / 255.0 if is_pixels else 1.0)

