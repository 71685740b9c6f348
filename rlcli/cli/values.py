"""What the subcommands offer for their values: help-text lists and shell-completion callbacks.

Everything comes from :mod:`rlcli.registry`, the presets folder and the run folders on disk; nothing here
imports torch, numpy or an environment, so a TAB answers at the cost of starting Python and Typer.
Completion callbacks take ``(ctx, incomplete)`` and return ``(value, description)`` pairs.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import typer

from rlcli import registry

Completions = list[tuple[str, str]]
CHECKPOINT_CHOICES = ("last", "best")
DEVICES = ("auto", "cpu", "cuda")


def algo_list(command: str = "train") -> str:
    return ", ".join(s.name for s in registry.algorithms(command))


def env_list() -> str:
    return ", ".join(f"{s.name}:<Game>" if s.name == "atari" else s.name for s in registry.environments())


def ad_envs() -> list[str]:
    """The environments Algorithm Distillation's pipeline (collect, distill) runs on."""
    algo = registry.algo_spec("ad")
    return [s.name for s in registry.environments() if s.observation in algo.observations]


def policy_list() -> str:
    return ", ".join(s.name for s in registry.policies())


def _matching(pairs: Completions, incomplete: str) -> Completions:
    return [(v, h) for v, h in pairs if v.startswith(incomplete)]


def _positional(ctx: typer.Context, param: str) -> str | None:
    """The first positional argument: while an option still waits for its value, click leaves it in
    ctx.args instead of ctx.params."""
    return ctx.params.get(param) or next((a for a in ctx.args if not a.startswith("-")), None)


def _saved_algo(run: str | None) -> str | None:
    """The ``algo`` of a run folder's config.toml, if it has one."""
    import tomllib

    try:
        with open(Path(run, "config.toml"), "rb") as f:
            return tomllib.load(f).get("algo")
    except (OSError, TypeError, tomllib.TOMLDecodeError):
        return None


def _algo_of(ctx: typer.Context) -> registry.AlgoSpec | None:
    """The algorithm the command line names so far (collect and distill: ad)."""
    if ctx.command.name == "train":
        name = _positional(ctx, "algo")
    elif ctx.command.name == "eval":
        name = _saved_algo(_positional(ctx, "run"))
    else:
        name = "ad"
    try:
        return registry.algo_spec(name) if name else None
    except registry.ConfigError:
        return None


def complete_algo(ctx: typer.Context, incomplete: str) -> Completions:
    return _matching([(s.name, s.description) for s in registry.algorithms("train")], incomplete)


def complete_env(ctx: typer.Context, incomplete: str) -> Completions:
    algo = _algo_of(ctx)
    pairs = []
    for env_id in registry.env_ids():
        spec = registry.env_spec(env_id)
        if algo is None or spec.observation in algo.observations:
            pairs.append((env_id, spec.description if ":" not in env_id else ""))
    return _matching(pairs, incomplete)


def complete_policy(ctx: typer.Context, incomplete: str) -> Completions:
    algo = _algo_of(ctx)
    return _matching([(s.name, s.description) for s in registry.policies()
                      if algo is None or s.name in algo.policies], incomplete)


def complete_technique(ctx: typer.Context, incomplete: str) -> Completions:
    algo = _algo_of(ctx)
    return _matching([(t, "") for t in registry.TECHNIQUES
                      if algo is None or all(p in algo.techniques for p in registry.technique_parts(t))],
                     incomplete)


def complete_device(ctx: typer.Context, incomplete: str) -> Completions:
    return _matching([(d, "") for d in DEVICES], incomplete)


def complete_preset(ctx: typer.Context, incomplete: str) -> Completions:
    from rlcli.config.presets import available_presets

    return _matching([(p, "") for p in available_presets()], incomplete)


def _field_values(tp: typing.Any, meta: typing.Mapping) -> list[str]:
    if meta.get("choices"):
        return [str(c) for c in meta["choices"]]
    return ["true", "false"] if tp is bool else []


def complete_set(ctx: typer.Context, incomplete: str) -> Completions:
    """``--set`` keys of the command's algorithm (``ppo.l`` -> ``ppo.learning_rate=``), then the values of
    an enum or bool key after ``=`` (also algorithm, env and policy names)."""
    from rlcli.config.schema import section_types

    algo = _algo_of(ctx)
    sections = section_types(algo.name if algo else "ppo")
    key, eq, _ = incomplete.partition("=")
    if eq:
        section, _, name = key.partition(".")
        cls = sections.get(section)
        fields = {f.name: f for f in dataclasses.fields(cls)} if cls else {}
        if name not in fields:
            return []
        if key == "env.id":
            values = registry.env_ids()
        elif key == "policy.name":
            values = [s.name for s in registry.policies()]
        else:
            values = _field_values(typing.get_type_hints(cls)[name], fields[name].metadata)
        return _matching([(f"{key}={v}", "") for v in values], incomplete)
    pairs = [(f"{section}.{f.name}=", f.metadata.get("help", "")) for section, cls in sections.items()
             for f in dataclasses.fields(cls)]
    return _matching(pairs, incomplete)


def _runs_dir(ctx: typer.Context) -> Path:
    return Path(ctx.params.get("runs_dir") or "runs")


def complete_run(ctx: typer.Context, incomplete: str) -> Completions:
    """Run folders (``runs/<name>``, one level of nesting for studies) and checkpoint files."""
    roots = {_runs_dir(ctx), Path(incomplete).parent if "/" in incomplete else Path(".")}
    found: set[str] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for config in [*root.glob("*/config.toml"), *root.glob("*/*/config.toml")]:
            found.add(str(config.parent))
        found.update(str(p) for p in root.glob("*.h5"))
        found.update(str(p) for p in root.glob("*/checkpoints/*.h5"))
    return _matching([(p, "") for p in sorted(found)], incomplete)


def complete_checkpoint(ctx: typer.Context, incomplete: str) -> Completions:
    """last, best, and the checkpoint files of the run the command line names."""
    pairs = [("last", "the checkpoint at the end of training"), ("best", "the best evaluation")]
    run = _positional(ctx, "run")
    if run and Path(run, "checkpoints").is_dir():
        pairs += [(str(p), "") for p in sorted(Path(run, "checkpoints").glob("*.h5"))
                  if p.stem not in CHECKPOINT_CHOICES]
    return _matching(pairs, incomplete)


def complete_ad_tasks(ctx: typer.Context, incomplete: str) -> Completions:
    return _matching([("test", "held-out tasks"), ("validation", "held-out tasks for choosing checkpoints"),
                      ("train", "tasks AD was trained on")], incomplete)


def complete_study(ctx: typer.Context, incomplete: str) -> Completions:
    from rlcli.config.presets import preset_dirs

    files = [str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p)
             for d in preset_dirs() for p in sorted(d.glob("*.toml")) if "[study]" in p.read_text()]
    return _matching([(f, "") for f in files], incomplete)
