"""The causal transformer of Algorithm Distillation (nanoGPT-style), with a rolling KV-cache.

A learning history is a stream of transitions (s_t, a_t, r_t); each becomes three tokens, so a context of
``context_len`` transitions is ``window = 3 * context_len`` tokens. The model predicts a_t from the output
at the s_t token. Training runs plain causal attention over windows of ``context_len`` transitions cut
from the histories, so the prediction at a window's i-th state has seen the i transitions before it from
that window's start, and nothing older.

Position signal (``positions``):

- ``"time_step"`` (the seed's): the env's time step within the episode is embedded and added to the three
  tokens of a transition;
- ``"learned"``: a learned embedding of the token's index in the context window (0 at its start).

Generation (:class:`KVCache`, :meth:`ADTransformer.step_state` / :meth:`~ADTransformer.step_outcome`)
gives the model exactly what training gave it, for both encodings: the context is the stream from an
*anchor* transition on, encoded from the anchor as if it were a training window (positions from 0), so
the cached logits equal a plain forward over that context (within float rounding). When the context holds
``context_len`` transitions it is re-anchored: the last ``keep`` transitions are re-encoded from scratch as
a new window and generation goes on from them. (A cache that simply drops the oldest tokens would not do:
with more than one layer its old keys and values carry information from tokens that left the window, a
context the model never saw in training.)

Attention runs through ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient
kernels on GPU; ``is_causal`` on full training windows).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ADModelConfig:
    num_states: int
    num_actions: int
    max_time_step: int  # episode limit: time steps are in [0, max_time_step)
    context_len: int = 256  # transitions
    embed_dim: int = 64
    num_layers: int = 4
    num_heads: int = 4
    ff_dim: int = 2048
    attention_dropout: float = 0.5
    residual_dropout: float = 0.1
    embedding_dropout: float = 0.0
    positions: str = "time_step"  # or "learned"
    state_encoding: str = "cell"  # or "row_col" / "row_col_ordinal" (states are cells row * grid_size + col)
    grid_size: int = 0  # side of the square grid, for "row_col" and "row_col_ordinal"
    next_state: bool = False  # the reward token also encodes s' (the cell the action led to)

    @property
    def window(self) -> int:
        return 3 * self.context_len


class KVCache:
    """The context of a batch of generation streams: per layer, the keys and values (B, heads, L, head_dim)
    of the L tokens since the anchor, and the transitions since the anchor (to re-encode them).

    ``keep``: transitions kept when a full context is re-anchored (1 <= keep < context_len); the context
    then runs from ``keep + 1`` to ``context_len`` transitions, and re-encoding costs ``keep / (context_len
    - keep)`` transitions per step on average.
    """

    def __init__(self, num_layers: int, context_len: int, keep: int | None = None):
        self.context_len = context_len
        self.keep = keep if keep is not None else max(1, context_len - max(1, context_len // 4))
        if not 1 <= self.keep < context_len:
            raise ValueError(f"keep must be in [1, {context_len}), got {self.keep}")
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.transitions: dict[str, list[torch.Tensor]] = {k: [] for k in TRANSITION_KEYS}  # since the anchor
        self.start = 0  # stream index (transitions since the cache was made) of the anchor
        self.seen = 0  # transitions fed so far (the current one counts once its outcome is in)
        self.pending_state: torch.Tensor | None = None  # s_t fed by step_state, until step_outcome

    @property
    def length(self) -> int:
        """Tokens in the context."""
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def clear(self) -> None:
        self.keys = [None] * len(self.keys)
        self.values = [None] * len(self.values)


TRANSITION_KEYS = ("states", "actions", "rewards", "time_steps", "next_states")


def causal_mask(past_len: int, q_len: int, device: torch.device) -> torch.Tensor:
    """(q_len, past_len + q_len) bool: new token i sees every cached token and the new tokens up to i."""
    q = torch.arange(q_len, device=device)[:, None]
    k = torch.arange(past_len + q_len, device=device)[None, :]
    return k <= q + past_len


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ADModelConfig):
        super().__init__()
        if cfg.embed_dim % cfg.num_heads:
            raise ValueError(f"embed_dim ({cfg.embed_dim}) must be divisible by num_heads ({cfg.num_heads})")
        self.heads, self.attention_dropout = cfg.num_heads, cfg.attention_dropout
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.drop = nn.Dropout(cfg.residual_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, past: tuple[torch.Tensor, torch.Tensor] | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, L, D); ``mask`` None = plain causal. Returns (out (B, L, D), keys, values incl. ``past``)."""
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        dropout = self.attention_dropout if self.training else 0.0
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        y = y.transpose(1, 2).reshape(b, length, d)
        return self.drop(self.proj(y)), k, v


class Block(nn.Module):
    def __init__(self, cfg: ADModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.embed_dim), nn.LayerNorm(cfg.embed_dim)
        self.attn = CausalSelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.embed_dim, cfg.ff_dim), nn.GELU(),
                                 nn.Linear(cfg.ff_dim, cfg.embed_dim), nn.Dropout(cfg.residual_dropout))

    def forward(self, x, mask, past):
        a, k, v = self.attn(self.ln1(x), mask, past)
        x = x + a
        return x + self.mlp(self.ln2(x)), k, v


class ADTransformer(nn.Module):
    """Predicts the source algorithm's next action from its (state, action, reward) history."""

    def __init__(self, cfg: ADModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        if cfg.state_encoding == "cell":
            self.state_emb = nn.Embedding(cfg.num_states, d)
        elif cfg.state_encoding in ("row_col", "row_col_ordinal"):
            if cfg.grid_size * cfg.grid_size != cfg.num_states:
                raise ValueError(f"row_col needs num_states = grid_size**2, got {cfg.num_states} and {cfg.grid_size}")
            self.row_emb, self.col_emb = nn.Embedding(cfg.grid_size, d), nn.Embedding(cfg.grid_size, d)
        else:
            raise ValueError("state_encoding must be 'cell', 'row_col' or 'row_col_ordinal', "
                             f"got {cfg.state_encoding!r}")
        self.action_emb = nn.Embedding(cfg.num_actions, d)
        self.reward_emb = nn.Embedding(2, d)  # DarkRoom rewards are 0 or 1 (the seed embeds them)
        if cfg.positions == "time_step":
            self.pos_emb = nn.Embedding(cfg.max_time_step, d)
        elif cfg.positions == "learned":
            self.pos_emb = nn.Embedding(cfg.window, d)
        else:
            raise ValueError(f"positions must be 'time_step' or 'learned', got {cfg.positions!r}")
        self.drop = nn.Dropout(cfg.embedding_dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.num_actions)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def encode_states(self, states: torch.Tensor) -> torch.Tensor:
        """Cell indices (...) -> (..., D). "row_col" shares one row and one column embedding across cells, so
        what the model learns about a row or column carries over to goal cells it never trained on.

        "row_col_ordinal" makes those embeddings ordered (a thermometer code): row r is the sum of the
        first r + 1 learned row vectors, so the difference between two rows' codes is the sum of the step
        vectors between them, and one linear readout can tell "the goal is further down than I am" for
        every pair of rows -- including goal cells no training history ended on."""
        if self.cfg.state_encoding == "cell":
            return self.state_emb(states)
        rows, cols = states // self.cfg.grid_size, states % self.cfg.grid_size
        if self.cfg.state_encoding == "row_col_ordinal":
            return (F.embedding(rows, self.row_emb.weight.cumsum(0))
                    + F.embedding(cols, self.col_emb.weight.cumsum(0)))
        return self.row_emb(rows) + self.col_emb(cols)

    def embed(self, states: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
              time_steps: torch.Tensor, next_states: torch.Tensor | None = None,
              first_position: int = 0) -> torch.Tensor:
        """(B, T) each -> interleaved tokens (B, 3T, D): s_0, a_0, r_0, s_1, ...

        With ``cfg.next_state`` the reward token r_t also encodes s'_t, the cell a_t led to: in the seed's
        variant a reward ends the episode, so the goal cell is never a state token, and this makes where
        the reward was found explicit. ``first_position`` is the context index of s_0 (learned positions).
        """
        b, t = states.shape
        outcome = self.reward_emb(rewards.long().clamp(0, 1))
        if self.cfg.next_state:
            if next_states is None:
                raise ValueError("this model encodes next states (cfg.next_state): pass next_states")
            outcome = outcome + self.encode_states(next_states)
        tokens = torch.stack([self.encode_states(states), self.action_emb(actions), outcome], dim=2)  # (B,T,3,D)
        if self.cfg.positions == "time_step":
            tokens = tokens + self.pos_emb(time_steps.clamp(0, self.cfg.max_time_step - 1))[:, :, None, :]
            return self.drop(tokens.reshape(b, 3 * t, -1))
        x = tokens.reshape(b, 3 * t, -1)
        pos = torch.arange(first_position, first_position + 3 * t, device=x.device)
        return self.drop(x + self.pos_emb(pos))

    def run_tokens(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Run tokens (B, L, D) through the blocks -> final hidden states (B, L, D).

        Without a cache the tokens are a window from its start (plain causal attention, L <= window). With
        a cache they continue the cached context, whose keys and values are extended.
        """
        length = x.shape[1]
        past_len = cache.length if cache is not None else 0
        if past_len + length > self.cfg.window:
            raise ValueError(f"{past_len + length} tokens exceed the context of {self.cfg.window}")
        mask = None if past_len == 0 else causal_mask(past_len, length, x.device)
        for i, block in enumerate(self.blocks):
            past = None
            if cache is not None and cache.keys[i] is not None:
                past = (cache.keys[i], cache.values[i])
            x, k, v = block(x, mask, past)
            if cache is not None:
                cache.keys[i], cache.values[i] = k, v
        return self.ln_f(x)

    def forward(self, states: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
                time_steps: torch.Tensor, next_states: torch.Tensor | None = None) -> torch.Tensor:
        """Action logits (B, T, A) for every state of the stream (B, T) (from the state tokens)."""
        h = self.run_tokens(self.embed(states, actions, rewards, time_steps, next_states))
        return self.head(h[:, 0::3])

    def new_cache(self, keep: int | None = None) -> KVCache:
        """An empty context; ``keep``: transitions kept at each re-anchoring (default 3/4 of the context)."""
        return KVCache(self.cfg.num_layers, self.cfg.context_len, keep)

    def reanchor(self, cache: KVCache) -> None:
        """Start the context anew from its last ``cache.keep`` transitions, encoded as a fresh window."""
        kept = {k: v[-cache.keep:] for k, v in cache.transitions.items()}
        cache.clear()
        cache.transitions = kept
        cache.start = cache.seen - cache.keep
        t = {k: torch.stack(v, 1) for k, v in kept.items()}
        self.run_tokens(self.embed(t["states"], t["actions"], t["rewards"], t["time_steps"], t["next_states"]),
                        cache)

    def step_state(self, state: torch.Tensor, time_step: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Feed s_t (B,) with its time step; returns the logits (B, A) of a_t, equal to those of a plain
        forward over the context (the transitions from ``cache.start`` on, then s_t)."""
        if cache.length % 3:
            raise ValueError("step_state follows step_outcome: feed the last state's action and reward first")
        if len(cache.transitions["states"]) >= cache.context_len:  # no room for s_t: re-anchor first
            self.reanchor(cache)
        zeros = torch.zeros_like(state)
        x = self.embed(state[:, None], zeros[:, None], zeros[:, None], time_step[:, None], zeros[:, None],
                       first_position=cache.length)[:, :1]
        cache.pending_state = state
        return self.head(self.run_tokens(x, cache)[:, -1])

    def step_outcome(self, action: torch.Tensor, reward: torch.Tensor, time_step: torch.Tensor,
                     cache: KVCache, next_state: torch.Tensor | None = None) -> None:
        """Feed a_t and r_t (B,) of the state fed last (same time step; with cfg.next_state also s'_t)."""
        if cache.length % 3 != 1:
            raise ValueError("step_outcome follows step_state: feed the state first")
        if next_state is None:
            if self.cfg.next_state:
                raise ValueError("this model encodes next states (cfg.next_state): pass next_state")
            next_state = torch.zeros_like(action)
        state = cache.pending_state
        x = self.embed(state[:, None], action[:, None], reward[:, None], time_step[:, None], next_state[:, None],
                       first_position=cache.length - 1)
        self.run_tokens(x[:, 1:], cache)
        for key, value in zip(TRANSITION_KEYS, (state, action, reward, time_step, next_state), strict=True):
            cache.transitions[key].append(value)
        cache.seen += 1
