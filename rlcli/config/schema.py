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


@dataclass
class RunConfig:
    name: str = option("", "Run folder name under run.runs_dir; empty = <algo>-<env>-<technique>-s<seed>-<time>.")
    seed: int = option(0, "Seed of torch, numpy and the environments.", min=0)
    total_steps: int = option(100_000, "Environment steps to train for (summed over parallel envs).", min=1)
    device: str = option("auto", "Torch device: auto picks cuda when available.", choices=("auto", "cpu", "cuda"))
    runs_dir: str = option("runs", "Folder that holds run folders.")
    technique: str = option("baseline", "Generalization technique: baseline, reg, gar or gar+reg.",
                            choices=("baseline", "reg", "gar", "gar+reg"))
    eval_every: int = option(0, "Evaluate every this many env steps (0 = only at the end).", min=0)
    eval_episodes: int = option(10, "Episodes per evaluation (deterministic policy).", min=1)
    checkpoint_every: int = option(50_000, "Save a checkpoint every this many env steps (0 = only at the end).",
                                   min=0)
    tensorboard: bool = option(False, "Also write TensorBoard events to <run>/tb.")
    torch_threads: int = option(1, "torch intra-op threads (small nets run fastest on 1; 0 = torch default).",
                                min=0)
    log_interval: float = option(2.0, "Seconds between metric flushes and plain progress lines.", min=0.1)


@dataclass
class EnvConfig:
    id: str = option("cartpole", "Environment: cartpole, minigrid, starpilot, darkroom, atari:<Game>, mario.")
    num_envs: int = option(4, "Parallel environments.", min=1)
    variation_level: float = option(0.0, "How far the environment is varied from its default, 0 to 1.",
                                    min=0.0, max=1.0)
    max_episode_steps: int = option(0, "Episode time limit (0 = the environment's own).", min=0)
    terminate_on_goal: bool = option(True, "DarkRoom: reaching the goal ends the episode (the seed's variant); "
                                           "false = reward on every step on the goal (the AD paper's).")


@dataclass
class PolicyConfig:
    name: str = option("mlp", "Policy network (mlp; others register in rlcli.nets.policies).")
    hidden_sizes: list[int] = option([64, 64], "Hidden layer widths of the MLP torso.", min=1)
    activation: str = option("tanh", "Hidden activation.", choices=("tanh", "relu"))


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


COMMON_SECTIONS: dict[str, type] = {"run": RunConfig, "env": EnvConfig, "policy": PolicyConfig}
ALGO_SECTIONS: dict[str, dict[str, type]] = {}


def register_algo(algo: str, sections: dict[str, type]) -> None:
    """Declare which config sections (beyond run/env/policy) an algorithm uses."""
    ALGO_SECTIONS[algo] = sections


register_algo("ppo", {"ppo": PPOConfig})


def _register_ad() -> None:
    from rlcli.config.ad import A2CConfig, ADConfig, CollectConfig

    # Algorithm Distillation: `rlcli collect` reads collect + a2c, `rlcli distill` reads ad
    register_algo("ad", {"collect": CollectConfig, "a2c": A2CConfig, "ad": ADConfig})


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
    return Config(algo, {name: build_section(cls, merged[name], name) for name, cls in types_.items()})


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
