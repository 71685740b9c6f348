"""The one typed config schema of rlcli.

A run's configuration is a :class:`Config`: the common sections ``run``, ``env`` and ``policy`` plus the
sections its algorithm uses (``ppo`` for PPO, ``ppo`` and ``vapor`` for VAPOR, ...). Each section is a
dataclass whose fields are declared with :func:`rlcli.config.fields.option` (type, default, help, range).
Algorithm modules add their sections with :func:`register_algo`; nothing else lists options.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from rlcli.config.fields import ConfigError, check_range, close_match, coerce, option, type_name
from rlcli.config.learners import (
    A2CLearnerConfig,
    DQNConfig,
    ESConfig,
    GARConfig,
    check_es,
    check_gar,
    check_no_gar,
    check_variation,
)


@dataclass
class RunConfig:
    name: str = option("", "Run folder name under run.runs_dir; empty = <algo>-<env>-<technique>-s<seed>-<time>.")
    seed: int = option(0, "Seed of torch, numpy and the environments.", min=0)
    total_steps: int = option(100_000, "Environment steps to train for (summed over parallel envs).", min=1, max=10**12)
    device: str = option("auto", "Torch device: auto picks cuda when available.", choices=("auto", "cpu", "cuda"))
    runs_dir: str = option("runs", "Folder that holds run folders.")
    technique: str = option("baseline", "Generalization technique: baseline, reg, gar or gar+reg.",
                            choices=("baseline", "reg", "gar", "gar+reg"))
    reg_coef: float = option(1e-3, "reg technique: L2 penalty 0.5 * reg_coef * ||theta||^2 added to the loss "
                             "(ES: OpenAI ES's l2coeff); unused without reg.", min=0.0)
    eval_every: int = option(0, "Evaluate every this many env steps (0 = only at the end).", min=0)
    eval_episodes: int = option(10, "Episodes per evaluation (deterministic policy).", min=1)
    checkpoint_every: int = option(50_000, "Save a checkpoint every this many env steps (0 = only at the end).",
                                   min=0)
    tensorboard: bool = option(False, "Also write TensorBoard events to <run>/tb.")
    torch_threads: int = option(1, "torch intra-op threads (small nets run fastest on 1; 0 = torch default).",
                                min=0)
    log_interval: float = option(2.0, "Seconds between metric flushes and plain progress lines.", min=0.1)

    @property
    def techniques(self) -> frozenset[str]:
        """The parts of ``technique``, the one place it is parsed: "gar+reg" -> {"gar", "reg"}, "baseline" -> {}."""
        return frozenset(self.technique.split("+")) - {"baseline"}


@dataclass
class EnvConfig:
    id: str = option("cartpole", "Environment: cartpole, minigrid, starpilot, darkroom, atari:<Game>, mario.")
    num_envs: int = option(4, "Parallel environments.", min=1)
    variation_level: float = option(0.0, "How far the environment is varied from its default, 0 to 1.",
                                    min=0.0, max=1.0)
    max_episode_steps: int = option(0, "Episode time limit (0 = the environment's own).", min=0)
    backend: str = option("auto", "Atari: envpool or ale-py worker processes; auto = envpool when installed.",
                          choices=("auto", "envpool", "ale-py"))
    action_set: str = option("simple", "Super Mario Bros buttons: gym-super-mario-bros' SIMPLE_MOVEMENT, "
                             "COMPLEX_MOVEMENT or RIGHT_ONLY.", choices=("simple", "complex", "right_only"))
    terminate_on_goal: bool = option(True, "DarkRoom: reaching the goal ends the episode (the seed's variant); "
                                           "false = reward on every step on the goal (the AD paper's).")


@dataclass
class PolicyConfig:
    name: str = option("mlp", "Policy network (mlp; others register in rlcli.nets.policies).")
    hidden_sizes: list[int] = option([64, 64], "Hidden layer widths of the MLP torso.", min=1)
    activation: str = option("tanh", "Hidden activation.", choices=("tanh", "relu"))
    vit_patch_size: int = option(12, "vit-explorative: side of the square image patches, in pixels.", min=1)
    vit_dim: int = option(128, "vit-explorative: token width.", min=8)
    vit_depth: int = option(2, "vit-explorative: transformer blocks.", min=1)
    vit_heads: int = option(4, "vit-explorative: attention heads per block (must divide vit_dim).", min=1)
    vit_mlp_dim: int = option(256, "vit-explorative: hidden width of each block's MLP.", min=1)
    dropout_p: float = option(0.2, "vit-consistent-dropout: dropout probability in the encoder and actor MLP.",
                              min=0.0, max=0.95)
    consistent_dropout: bool = option(True, "vit-consistent-dropout: store each rollout step's dropout masks and "
                                      "reuse them in the update; false = ordinary dropout (fresh masks every pass).")
    perceiver_tokenizer: str = option("auto", "vit-consistent-dropout: how observations become tokens: vector "
                                      "(one per feature), grid (one per cell), patches (image patches); auto "
                                      "picks by observation shape.", choices=("auto", "vector", "grid", "patches"))
    perceiver_patch_size: int = option(8, "vit-consistent-dropout: side in pixels of the square image patches "
                                       "of perceiver_tokenizer=patches.", min=1)
    perceiver_dim: int = option(64, "vit-consistent-dropout: width of tokens and perceiver latents.", min=1)
    perceiver_latents: int = option(8, "vit-consistent-dropout: learned latent queries of the encoder.", min=1)
    perceiver_layers: int = option(1, "vit-consistent-dropout: latent self-attention layers after the "
                                   "cross-attention layer.", min=0)
    perceiver_heads: int = option(4, "vit-consistent-dropout: attention heads (must divide perceiver_dim).",
                                  min=1)


@dataclass
class PPOConfig:
    learning_rate: float = option(2.5e-4, "Adam learning rate.", min=0.0)
    num_steps: int = option(128, "Rollout length per environment between updates.", min=1)
    num_epochs: int = option(4, "Passes over each rollout.", min=1)
    num_minibatches: int = option(4, "Minibatches per epoch.", min=1)
    gamma: float = option(0.99, "Discount factor.", min=0.0, max=1.0)
    gae_lambda: float = option(0.95, "GAE lambda.", min=0.0, max=1.0)
    clip_coef: float = option(0.2, "Clipping range of the surrogate objective.", min=0.0)
    clip_vloss: bool = option(True, "Clip the value loss around the old values (PPO2 style).")
    ent_coef: float = option(0.01, "Entropy bonus coefficient.", min=0.0)
    vf_coef: float = option(0.5, "Value loss coefficient.", min=0.0)
    max_grad_norm: float = option(0.5, "Global gradient-norm clip.", min=0.0)
    anneal_lr: bool = option(True, "Anneal the learning rate linearly to 0 over run.total_steps.")
    norm_adv: bool = option(True, "Normalise advantages per minibatch.")
    adam_eps: float = option(1e-5, "Adam epsilon.", min=0.0)


@dataclass
class RNDPPOConfig(PPOConfig):
    """PPO's options as RND uses them: ``gamma`` discounts the extrinsic (episodic) rewards."""

    learning_rate: float = option(1e-4, "Adam learning rate (policy and RND predictor).", min=0.0)
    gamma: float = option(0.999, "Discount of extrinsic rewards (the episodic value head).", min=0.0, max=1.0)
    ent_coef: float = option(0.001, "Entropy bonus coefficient.", min=0.0)
    anneal_lr: bool = option(False, "Anneal the learning rate linearly to 0 over run.total_steps.")


@dataclass
class RNDConfig:
    int_gamma: float = option(0.99, "Discount of intrinsic rewards (the non-episodic value head).",
                              min=0.0, max=1.0)
    ext_coef: float = option(2.0, "Weight of the extrinsic advantages in the combined advantage.", min=0.0)
    int_coef: float = option(1.0, "Weight of the intrinsic advantages in the combined advantage.", min=0.0)
    update_proportion: float = option(0.25, "Fraction of each minibatch the RND predictor is trained on.",
                                      min=0.0, max=1.0)
    warmup_steps: int = option(6400, "Random-action steps per env that initialise the observation "
                               "normaliser before training (not counted in run.total_steps).", min=0)
    obs_clip: float = option(5.0, "Normalised observations fed to the RND networks are clipped to +-this.",
                             min=0.0)
    output_size: int = option(512, "Width of the target and predictor embeddings.", min=1)
    hidden_sizes: list[int] = option([64, 64], "Hidden widths of the RND MLPs (vector observations only; "
                                     "images use the RND paper's convnets).", min=1)
    clip_ext_rewards: bool = option(True, "Clip extrinsic rewards to [-1, 1] for learning (eval returns "
                                    "stay raw).")
    life_loss_ends_ext: bool = option(True, "A lost life ends the extrinsic value's episode (no bootstrap "
                                      "across it); the game itself goes on.")


@dataclass
class VaporConfig:
    beta: float = option(1.0, "Temperature of the optimality posterior sigmoid(A / beta) and weight of the KL "
                         "penalty, at the start of training.", min=1e-6)
    beta_schedule: str = option("linear", "How beta moves from vapor.beta to vapor.min_beta over run.total_steps.",
                                choices=("constant", "linear", "exponential"))
    min_beta: float = option(0.1, "Beta at the end of training (linear and exponential schedules).", min=1e-6)
    exploration_bonus: float = option(0.01, "Coefficient of the policy entropy weighted by the entropy of the "
                                      "optimality posterior (uncertainty-weighted exploration).", min=0.0)
    use_importance_weighting: bool = option(True, "Weight the policy gradient by pi_new / pi_old clipped to "
                                            "[1 - ppo.clip_coef, 1 + ppo.clip_coef].")


COMMON_SECTIONS: dict[str, type] = {"run": RunConfig, "env": EnvConfig, "policy": PolicyConfig}
ALGO_SECTIONS: dict[str, dict[str, type]] = {}
ALGO_CHECKS: dict[str, Any] = {}  # algo -> check(cfg) raising ConfigError for combinations it cannot run


def register_algo(algo: str, sections: dict[str, type], check: Any = None) -> None:
    """Declare which config sections (beyond run/env/policy) an algorithm uses, and an optional check."""
    ALGO_SECTIONS[algo] = sections
    if check is not None:
        ALGO_CHECKS[algo] = check


register_algo("ppo", {"ppo": PPOConfig, "gar": GARConfig}, check_gar)
register_algo("vapor", {"ppo": PPOConfig, "gar": GARConfig, "vapor": VaporConfig}, check_gar)
register_algo("dqn", {"dqn": DQNConfig, "gar": GARConfig}, check_gar)
register_algo("es", {"es": ESConfig}, check_es)
register_algo("rnd", {"ppo": RNDPPOConfig, "rnd": RNDConfig}, check_no_gar)
register_algo("a2c", {"a2c": A2CLearnerConfig}, check_no_gar)


def _register_ad() -> None:
    from rlcli.config.ad import A2CConfig, ADConfig, CollectConfig, check_ad

    # Algorithm Distillation: `rlcli collect` reads collect + a2c, `rlcli distill` reads ad
    register_algo("ad", {"collect": CollectConfig, "a2c": A2CConfig, "ad": ADConfig}, check_ad)


_register_ad()


def known_algos() -> list[str]:
    return sorted(ALGO_SECTIONS)


class Config:
    """A fully resolved configuration: ``cfg.run.seed``, ``cfg.ppo.learning_rate``, ...

    ``section_types`` fixes which sections exist; everything is validated on construction.
    """

    def __init__(self, algo: str, sections: dict[str, Any]):
        self.algo = algo
        self._sections = sections

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("_sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"config of algo '{self.__dict__.get('algo')}' has no section '{name}'")

    @property
    def sections(self) -> dict[str, Any]:
        return self._sections

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"algo": self.algo}
        for name, sec in self._sections.items():
            out[name] = dataclasses.asdict(sec)
        return out

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    def copy(self) -> Config:
        return Config(self.algo, {k: dataclasses.replace(v) for k, v in self._sections.items()})


def section_types(algo: str) -> dict[str, type]:
    if algo not in ALGO_SECTIONS:
        raise ConfigError(f"unknown algorithm '{algo}'{close_match(algo, known_algos())}; "
                          f"choose one of {', '.join(known_algos())}")
    return {**COMMON_SECTIONS, **ALGO_SECTIONS[algo]}


def build_section(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown key '{prefix}.{key}'"
                              f"{close_match(f'{prefix}.{key}', [f'{prefix}.{k}' for k in fields])}; "
                              f"see --config-options")
        v = coerce(value, hints[key], f"{prefix}.{key}")
        check_range(v, fields[key].metadata, f"{prefix}.{key}")
        kwargs[key] = v
    return cls(**kwargs)


def build_config(algo: str, layers: list[dict[str, Any]]) -> Config:
    """Merge layers (later wins: defaults < preset < user file < overrides) and validate them."""
    types_ = section_types(algo)
    merged: dict[str, dict[str, Any]] = {name: {} for name in types_}
    for layer in layers:
        for name, values in layer.items():
            if name == "algo":
                if values != algo:
                    raise ConfigError(f"the config is for algo '{values}', but the command trains '{algo}'")
                continue
            if name not in types_:
                hint = close_match(name, list(types_))
                used_by = [a for a, s in ALGO_SECTIONS.items() if name in s]
                why = f" (it belongs to {', '.join(used_by)})" if used_by and not hint else ""
                raise ConfigError(f"unknown section '{name}' for algo '{algo}'{hint}{why}; see --config-options")
            if not isinstance(values, dict):
                raise ConfigError(f"'{name}' must be a table of keys, got {values!r}")
            merged[name].update(values)
    cfg = Config(algo, {name: build_section(cls, merged[name], name) for name, cls in types_.items()})
    if algo in ALGO_CHECKS:
        ALGO_CHECKS[algo](cfg)
    check_variation(cfg)
    return cfg


def describe_options(algo: str) -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every option of ``algo``, in schema order."""
    rows = []
    for name, cls in section_types(algo).items():
        hints = typing.get_type_hints(cls)
        defaults = cls()
        for f in dataclasses.fields(cls):
            meta = f.metadata
            help_ = meta.get("help", "")
            if meta.get("choices"):
                help_ += f" [{'|'.join(map(str, meta['choices']))}]"
            bounds = [f">= {meta['min']}" if meta.get("min") is not None else "",
                      f"<= {meta['max']}" if meta.get("max") is not None else ""]
            if any(bounds):
                help_ += f" ({', '.join(b for b in bounds if b)})"
            rows.append((f"{name}.{f.name}", type_name(hints[f.name]), repr(getattr(defaults, f.name)), help_))
    return rows
