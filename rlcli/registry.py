"""The one registry of what rlcli runs: algorithms, environment families and policy networks.

Everything a user sees about them reads this module: the lists in ``rlcli train --help``, the
did-you-mean errors, tab completion, ``--config-options`` and the checks ``--dry-run`` makes before any
work (:func:`check_config`). The built-in entries are declared beside their code, as tables of specs
(``rlcli/algos/__init__.py``, ``rlcli/envs/__init__.py``, ``rlcli/nets/__init__.py``); a plugin adds its
own with :func:`register_algo`, :func:`register_env` or :func:`register_policy`.

Torch-free and numpy-free on purpose: tab completion imports this module and answers in well under 0.3 s.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

from rlcli.algos import ALGORITHMS
from rlcli.config.fields import ConfigError, close_match
from rlcli.envs import ENVIRONMENTS
from rlcli.nets import POLICIES
from rlcli.specs import AlgoSpec, EnvSpec, PolicySpec, load_target

TECHNIQUES = ("baseline", "reg", "gar", "gar+reg")  # run.technique: a base technique, optionally + reg

_algos: dict[str, AlgoSpec] = {s.name: s for s in ALGORITHMS}
_envs: dict[str, EnvSpec] = {s.name: s for s in ENVIRONMENTS}
_policies: dict[str, PolicySpec] = {s.name: s for s in POLICIES}


class MissingEnvPackage(ConfigError):
    """The environment's package is not installed (exit 2, with the install command)."""


def register_algo(spec: AlgoSpec) -> None:
    _algos[spec.name] = spec


def register_env(spec: EnvSpec) -> None:
    _envs[spec.name] = spec


def register_policy(spec: PolicySpec) -> None:
    _policies[spec.name] = spec


def algorithms(command: str | None = None) -> list[AlgoSpec]:
    """Registered algorithms in registration order; only those ``rlcli COMMAND`` trains when given."""
    return [s for s in _algos.values() if command is None or s.command == command]


def environments() -> list[EnvSpec]:
    return list(_envs.values())


def policies() -> list[PolicySpec]:
    return list(_policies.values())


def _unknown(kind: str, name: str, known: list[str]) -> ConfigError:
    return ConfigError(f"unknown {kind} '{name}'{close_match(name, known)}; choose one of {', '.join(known)}")


def algo_spec(name: str) -> AlgoSpec:
    if name not in _algos:
        raise _unknown("algorithm", name, list(_algos))
    return _algos[name]


def algorithm_class(name: str) -> type:
    """The Algorithm subclass of ``name`` (imports its module, and torch with it)."""
    return load_target(algo_spec(name).target)


def env_spec(env_id: str) -> EnvSpec:
    """The family of ``env_id`` (``atari:Pong`` -> atari); ConfigError naming the close match."""
    family = env_id.split(":")[0]
    if family not in _envs:
        raise ConfigError(f"unknown environment '{env_id}'{close_match(family, list(_envs))}; "
                          f"choose one of {', '.join(_envs)}")
    return _envs[family]


def policy_spec(name: str) -> PolicySpec:
    if name not in _policies:
        raise _unknown("policy", name, list(_policies))
    return _policies[name]


def env_variants(spec: EnvSpec) -> list[str]:
    """The names ``FAMILY:NAME`` accepts (Atari games from ale-py's ROM folder, Mario levels)."""
    return list(load_target(spec.variants)()) if spec.variants else []


def env_ids() -> list[str]:
    """Every env.id a user can type: the families, and ``atari:<Game>`` for each game (completion)."""
    ids: list[str] = []
    for spec in _envs.values():
        variants = env_variants(spec)
        if not variants or spec.check_id is None or _accepts_bare(spec):
            ids.append(spec.name)
        ids.extend(f"{spec.name}:{v}" for v in variants)
    return ids


def _accepts_bare(spec: EnvSpec) -> bool:
    try:
        load_target(spec.check_id)(spec.name)
    except ConfigError:
        return False
    return True


def check_env_id(env_id: str) -> EnvSpec:
    """Everything making ``env_id`` would check, without making it: the family, the variant (an Atari
    game against ale-py's ROMs) and that its package is installed. Returns the family's spec."""
    spec = env_spec(env_id)
    if spec.check_id is not None:
        load_target(spec.check_id)(env_id)
    if spec.modules and not any(importlib.util.find_spec(m) for m in spec.modules):
        raise MissingEnvPackage(f"environment '{env_id}' needs the package '{spec.modules[0]}', which is not "
                                f"installed; install it with: pip install '{spec.package}'")
    return spec


def has_variation(env_id: str) -> bool:
    """Whether ``env.variation_level`` changes this environment (cartpole, minigrid, starpilot do)."""
    return env_spec(env_id).variation


def refuse_without_variation(env_id: str, what: str) -> None:
    """ConfigError when ``env_id`` has no variations; ``what`` says what needed them ("--shift ...")."""
    if not has_variation(env_id):
        varied = ", ".join(s.name for s in _envs.values() if s.variation)
        raise ConfigError(f"{what}, but environment '{env_id}' has no variations (env.variation_level does not "
                          f"change it); variations exist for {varied}")


def technique_parts(technique: str) -> list[str]:
    """``gar+reg`` -> ``["gar", "reg"]``."""
    return technique.split("+")


def check_config(cfg: Any) -> None:
    """The checks a run would make on ``cfg`` before its first step, made before any work (``--dry-run``
    too): env, policy and technique against what the algorithm, env and policy registered."""
    algo = algo_spec(cfg.algo)
    env = check_env_id(cfg.env.id)
    if env.observation not in algo.observations:
        raise ConfigError(f"{cfg.algo} learns from {' or '.join(algo.observations)} observations; '{cfg.env.id}' "
                          f"gives {env.observation} ones")
    # an env without variations would run identical copies and report variation effects of zero
    if cfg.env.variation_level != 0.0:
        refuse_without_variation(cfg.env.id, f"env.variation_level = {cfg.env.variation_level:g} asks for a variation")
    if "gar" in technique_parts(cfg.run.technique):
        refuse_without_variation(cfg.env.id, f"technique '{cfg.run.technique}' trains on several variation levels")
    _check_env_keys(cfg, env_keys(algo, env))
    if algo.check is not None:  # first: an algorithm's own check says best why it refuses (es: no gradients)
        algo.check(cfg)
    for part in technique_parts(cfg.run.technique):
        if part not in algo.techniques:
            have = [a.name for a in _algos.values() if part in a.techniques]
            raise ConfigError(f"technique '{cfg.run.technique}' is not implemented for {cfg.algo} "
                              f"({', '.join(have)} have {part}); use --technique "
                              f"{' or '.join(algo.techniques)}")
    if cfg.run.device not in ("auto", *algo.devices):
        raise ConfigError(f"{cfg.algo} runs on {' or '.join(algo.devices)}, not '{cfg.run.device}'")
    if algo.command == "train":  # AD has no policy section of its own to check
        policy = policy_spec(cfg.policy.name)
        if policy.name not in algo.policies:
            raise ConfigError(f"{cfg.algo} cannot use policy '{policy.name}'; it builds "
                              f"{', '.join(algo.policies)}")
        if env.observation not in policy.observations:
            raise ConfigError(f"policy '{policy.name}' needs {' or '.join(policy.observations)} observations; "
                              f"'{cfg.env.id}' gives {env.observation} ones")
        for divisor, dividend in policy.divides:  # what building the network would refuse, checked before
            a, b = getattr(cfg.policy, divisor), getattr(cfg.policy, dividend)
            if b % a:
                raise ConfigError(f"policy.{divisor}={a} must divide policy.{dividend}={b} ({policy.name})")


def env_keys(algo: AlgoSpec, env: EnvSpec) -> tuple[str, ...]:
    """The env.* keys that change a run of ``algo`` on ``env``."""
    return tuple(k for k in env.keys if algo.env_keys is None or k in algo.env_keys)


def _check_env_keys(cfg: Any, keys: tuple[str, ...]) -> None:
    """A changed env key that the run never reads would be silently ignored: refuse it."""
    defaults = type(cfg.env)()
    for f in dataclasses.fields(cfg.env):
        if f.name not in keys and getattr(cfg.env, f.name) != getattr(defaults, f.name):
            raise ConfigError(f"env.{f.name} does not apply to {cfg.algo} on '{cfg.env.id}' (it reads "
                              f"{', '.join('env.' + k for k in keys)}); drop it")
