"""Config sections of Algorithm Distillation (torch-free; registered in :mod:`rlcli.config.schema`).

One config drives the whole pipeline (``presets/darkroom-ad.toml``): ``collect`` and ``a2c`` for
``rlcli collect darkroom`` (the source algorithm's learning histories), ``ad`` for ``rlcli distill darkroom``
(the causal transformer trained on them) and its in-context evaluation. For ``ad``, ``run.total_steps``
counts gradient steps, and ``run.eval_every`` the gradient steps between in-context evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlcli.config.fields import option


@dataclass
class CollectConfig:
    num_test_tasks: int = option(23, "Held-out test tasks, split from the 80 by run.seed and stored in the file "
                                     "(the seed: 57 train / 23 test); only `rlcli eval --tasks test` plays them.",
                                 min=0, max=79)
    num_validation_tasks: int = option(8, "Held-out validation tasks (neither trained nor tested on): the "
                                          "in-run evaluation and best.h5 of `rlcli distill` use them.", min=0,
                                       max=79)
    max_train_tasks: int = option(0, "Collect only the first N training tasks (0 = all).", min=0)
    histories_per_task: int = option(4, "Source agents (different seeds) per training task.", min=1)
    test_histories_per_task: int = option(1, "Source agents per validation and per test task: their curves are "
                                             "the A2C baseline of `rlcli eval`; AD never trains on them.", min=0)
    source: str = option("a2c", "Source algorithm of the histories: A2C agents learning each task (the seed's), "
                                "or novelty explorers (explorer: head for the nearest unvisited cell until a "
                                "reward is found, then straight to it; noise_* add decaying random actions).",
                         choices=("a2c", "explorer"))
    noise_start: float = option(0.0, "explorer: probability of a random action in a stream's first episode.",
                                min=0.0, max=1.0)
    noise_end: float = option(0.0, "explorer: that probability after noise_episodes episodes.", min=0.0, max=1.0)
    noise_episodes: int = option(10, "explorer: episodes over which the random-action probability decays "
                                     "linearly from noise_start to noise_end.", min=1)
    steps_per_agent: int = option(2_500_000, "Env steps per agent (summed over its a2c.num_envs envs).", min=1)
    streams_per_agent: int = option(1, "Env streams of each agent stored as histories (<= a2c.num_envs).",
                                    min=1)
    episode_stride: int = option(1, "Store every k-th episode of each stream (1 = all): subsampling compresses "
                                    "the learning curve so that a short context spans visible improvement.", min=1)
    dense_until_success: bool = option(False, "Store every episode of a stream up to its first success and "
                                              "apply episode_stride only after it, so the stored histories "
                                              "never show the goal found faster than the source found it.")
    skip_after_success: int = option(0, "With dense_until_success: episodes right after a stream's first success "
                                        "left out before episode_stride applies (the source is still learning "
                                        "to return to the goal in them).", min=0)
    curve_every: int = option(10, "Record each agent's learning curve every N updates.", min=1)
    flush_every: int = option(200, "Append buffered transitions to the HDF5 file every N updates.", min=1)
    checkpoint_every: int = option(500, "Save the resume state every N updates (and on Ctrl-C).", min=1)
    chunk_size: int = option(4096, "HDF5 chunk length (transitions) of the history datasets.", min=16)


@dataclass
class A2CConfig:
    hidden_size: int = option(128, "Size of the shared state embedding (actor and critic heads are linear).",
                              min=1)
    num_envs: int = option(10, "Parallel envs per agent.", min=1)
    num_steps: int = option(10, "Rollout length per env between updates.", min=1)
    learning_rate: float = option(1e-4, "Adam learning rate.", min=0.0)
    adam_beta1: float = option(0.9, "Adam beta1.", min=0.0, max=1.0)
    adam_beta2: float = option(0.999, "Adam beta2.", min=0.0, max=1.0)
    adam_eps: float = option(1e-6, "Adam epsilon.", min=0.0)
    max_grad_norm: float = option(0.5, "Per-agent gradient-norm clip.", min=0.0)
    ent_coef: float = option(0.01, "Entropy bonus coefficient.", min=0.0)
    vf_coef: float = option(0.99, "Value loss coefficient.", min=0.0)
    gamma: float = option(0.99, "Discount factor of the n-step returns.", min=0.0, max=1.0)


@dataclass
class ADConfig:
    histories: str = option("", "Learning-histories file written by `rlcli collect` (--histories).")
    max_history_steps: int = option(800_000, "Use only the first N transitions of each history (0 = all).",
                                    min=0)
    success_window_fraction: float = option(0.0, "Fraction of training windows drawn from those that end after "
                                                 "their history's first reward (0 = uniform over all windows).",
                                            min=0.0, max=1.0)
    context_len: int = option(256, "Transitions in the context (3 tokens each: state, action, reward).", min=1)
    embed_dim: int = option(64, "Token embedding size.", min=8)
    num_layers: int = option(4, "Transformer blocks.", min=1)
    num_heads: int = option(4, "Attention heads.", min=1)
    ff_dim: int = option(2048, "Hidden size of the feed-forward layers.", min=1)
    attention_dropout: float = option(0.5, "Dropout on attention weights.", min=0.0, max=1.0)
    residual_dropout: float = option(0.1, "Dropout on residual branches.", min=0.0, max=1.0)
    embedding_dropout: float = option(0.0, "Dropout on token embeddings.", min=0.0, max=1.0)
    positions: str = option("time_step", "Position signal: the env's time step (the seed's; lets the KV-cache "
                                         "roll) or learned positions over the context.",
                            choices=("time_step", "learned"))
    state_encoding: str = option("cell", "State tokens: one embedding per cell (the seed's), the sum of a row "
                                         "and a column embedding (row_col, shared across cells), or the same with "
                                         "ordered embeddings (row_col_ordinal: row r = sum of the first r+1 "
                                         "learned row vectors, likewise columns).",
                                 choices=("cell", "row_col", "row_col_ordinal"))
    next_state: bool = option(False, "The reward token also encodes the cell the action led to (in the seed's "
                                     "variant the goal cell is otherwise never seen).")
    batch_size: int = option(32, "Context windows per gradient step.", min=1)
    learning_rate: float = option(3e-4, "Adam peak learning rate (cosine decay over run.total_steps).", min=0.0)
    min_learning_rate: float = option(2e-6, "Learning rate at the end of the cosine decay.", min=0.0)
    warmup_steps: int = option(0, "Linear warm-up steps before the cosine decay.", min=0)
    adam_beta1: float = option(0.9, "Adam beta1.", min=0.0, max=1.0)
    adam_beta2: float = option(0.99, "Adam beta2.", min=0.0, max=1.0)
    weight_decay: float = option(0.0, "AdamW weight decay (0 = Adam).", min=0.0)
    max_grad_norm: float = option(1.0, "Gradient-norm clip.", min=0.0)
    amp: bool = option(True, "bfloat16 autocast on CUDA (ignored on CPU).")
    temperature: float = option(1.0, "Sampling temperature of the in-context actions (logits / T): below 1 "
                                     "sharpens the imitated policy; pick it on the validation tasks "
                                     "(`rlcli eval RUN --tasks validation --temperature T`).", min=1e-3)
    eval_episodes: int = option(40, "Episodes per in-context evaluation (each task's context spans them all).",
                                min=1)
    eval_last: int = option(10, "eval_return is the mean return of the last N in-context episodes.", min=1)
    eval_repeats: int = option(3, "In-context runs per task in each in-run evaluation.", min=1)
    eval_tasks: str = option("validation", "Tasks of the in-context evaluation during training (it picks "
                                           "best.h5; the test tasks are only for `rlcli eval --tasks test`).",
                             choices=("validation", "train"))


DARKROOM_TASKS = 80  # every cell of the 9 x 9 room but the centre (rlcli.envs.darkroom.num_tasks)


def check_ad(cfg) -> None:
    """Combinations a collection cannot run, refused when the config is built (so --dry-run refuses them too)."""
    from rlcli.config.fields import ConfigError

    c = cfg.collect
    if c.num_test_tasks + c.num_validation_tasks >= DARKROOM_TASKS:
        raise ConfigError(f"collect.num_test_tasks ({c.num_test_tasks}) + collect.num_validation_tasks "
                          f"({c.num_validation_tasks}) leave no training task of the {DARKROOM_TASKS}")
    if c.source != "explorer" and (c.noise_start, c.noise_end) != (0.0, 0.0):
        raise ConfigError(f"collect.noise_start / noise_end act only with collect.source = \"explorer\" (this "
                          f"collection's source is {c.source}); drop them or choose the explorer")
    if c.streams_per_agent > cfg.a2c.num_envs:
        raise ConfigError(f"collect.streams_per_agent ({c.streams_per_agent}) must be <= a2c.num_envs "
                          f"({cfg.a2c.num_envs})")
