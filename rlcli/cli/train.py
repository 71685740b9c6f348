"""``rlcli train ALGO --env ENV ...``: resolve the config, call :func:`rlcli.train`, print a summary."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from rlcli.cli.app import app, exit_interrupted


def resumed_config(resume: str, algo: str | None, env: str | None, overrides: list[str],
                   extra: dict[str, dict[str, Any]] | None):
    """The saved config of run folder ``resume`` with ``overrides`` and CLI flags (``extra``) on top."""
    from rlcli.config.fields import ConfigError
    from rlcli.config.presets import load_run_config, parse_override
    from rlcli.config.schema import build_config

    config_path = Path(resume) / "config.toml"
    if not config_path.is_file():
        raise ConfigError(f"'{resume}' is not a run folder (no config.toml); pass the folder under runs/")
    saved = load_run_config(config_path)
    if algo is not None and algo != saved.algo:
        raise ConfigError(f"'{resume}' is a '{saved.algo}' run; use `rlcli train {saved.algo} --resume {resume}`")
    if env is not None and env != saved.env.id:
        raise ConfigError(f"'{resume}' trains on '{saved.env.id}', not '{env}'; drop --env to resume")
    layers = [saved.to_dict()] + [parse_override(o) for o in overrides] + ([extra] if extra else [])
    return build_config(saved.algo, layers)


def config_from_args(algo: str | None, env: str | None, preset: str | None, overrides: list[str],
                     policy: str | None, technique: str | None, steps: int | None, device: str | None,
                     runs_dir: str | None, name: str | None, tensorboard: bool | None,
                     resume: str | None = None):
    """The Config a train command line means (shared by ``train`` and ``profile train``)."""
    from rlcli.config.fields import ConfigError
    from rlcli.config.presets import resolve_config

    flags = {("policy", "name"): policy, ("run", "technique"): technique, ("run", "total_steps"): steps,
             ("run", "device"): device, ("run", "runs_dir"): runs_dir, ("run", "name"): name,
             ("run", "tensorboard"): True if tensorboard else None}
    extra: dict[str, dict[str, Any]] = {"run": {}, "policy": {}}
    for (section, key), value in flags.items():
        if value is not None:
            extra[section][key] = value
    extra = {k: v for k, v in extra.items() if v}
    if resume is not None:
        return resumed_config(resume, algo, env, overrides, extra)
    if algo is None:
        raise ConfigError("name the algorithm to train, e.g. `rlcli train ppo --env cartpole`")
    return resolve_config(algo, env=env, preset=preset, overrides=overrides, extra=extra or None)


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
def train(
    algo: str = typer.Argument(None, help="Algorithm: ppo, vapor, dqn, es, a2c, rnd."),
    env: str = typer.Option(None, "--env", "-e", help="Environment: cartpole, minigrid, starpilot, atari:<Game>, mario."),
    preset: str = typer.Option(None, "--preset", "-p", help="Preset name (presets/NAME.toml) or a TOML file."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a key: --set ppo.learning_rate=1e-3 (repeatable)."),
    policy: str = typer.Option(None, "--policy", help="Policy network (policy.name)."),
    technique: str = typer.Option(None, "--technique", help="baseline, reg, gar or gar+reg."),
    seeds: list[int] = typer.Option([], "--seeds", help="Train one run per seed: --seeds 0 1 2."),
    steps: int = typer.Option(None, "--steps", help="Total env steps (run.total_steps)."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda."),
    runs_dir: str = typer.Option(None, "--runs-dir", help="Folder for run folders (default runs/)."),
    name: str = typer.Option(None, "--name", help="Run folder name."),
    resume: str = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also write TensorBoard events."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config as TOML and exit."),
    config_options: bool = typer.Option(False, "--config-options", help="List every option with type, default and help."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain periodic progress lines instead of the live display."),
    study: str = typer.Option(None, "--study", help="Run the experiment matrix of a study file, e.g. presets/generalization.toml."),
    workers: int = typer.Option(None, "--workers", min=1, help="With --study: runs at a time (default: the file's study.workers)."),
    ray: str = typer.Option(None, "--ray", metavar="auto|ADDRESS", help="With --study: run each run as a Ray task on this cluster (auto: the one started here, else a local one)."),
) -> None:
    """Train an agent; the run folder gets config.toml, metrics.h5 and checkpoints/."""
    from rlcli.cli.display import make_reporter, print_options
    from rlcli.config.schema import describe_options

    if study is not None:
        _train_study(study, workers, dry_run, algo, env, resume, ray)
        return
    if ray is not None:
        from rlcli.config.fields import ConfigError

        raise ConfigError("--ray runs the runs of a study on a Ray cluster; use it with --study FILE")
    if workers is not None:
        from rlcli.config.fields import ConfigError

        raise ConfigError("--workers sets how many runs of a study run at a time; use it with --study FILE")
    if config_options:
        target = algo or "ppo"
        print_options(describe_options(target), f"rlcli train {target}: options (set with --set key=value)")
        return
    base = config_from_args(algo, env, preset, overrides, policy, technique, steps, device, runs_dir, name,
                            tensorboard, resume)
    configs = []
    for seed in seeds or [base.run.seed]:
        cfg = base.copy()
        cfg.run.seed = seed
        if name and len(seeds) > 1:
            cfg.run.name = f"{name}-s{seed}"
        configs.append(cfg)
    if dry_run:
        for cfg in configs:
            sys.stdout.write(cfg.to_toml())
        return

    import rlcli
    from rlcli.engine.train import TrainingInterrupted

    for cfg in configs:
        try:
            result = rlcli.train(cfg, resume=resume, reporter=make_reporter(quiet))
        except TrainingInterrupted as e:
            exit_interrupted(e.result, f"rlcli train {cfg.algo} --resume {e.result.run_dir}")
        if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 alone reports
            continue
        ev = (f"final eval return {result.final_eval_return:.1f} ± {result.final_eval_std:.1f}"
              if result.final_eval_return is not None else "no new steps")
        print(f"done: {result.steps} steps in {result.wall_time:.1f} s ({result.steps_per_second:.0f} steps/s), "
              f"{ev} -> {result.run_dir}")


def _train_study(path: str, workers: int | None, dry_run: bool, algo: str | None, env: str | None,
                 resume: str | None, ray: str | None = None) -> None:
    """``rlcli train --study FILE [--workers N] [--dry-run]``: exit 1 when any run failed."""
    from rlcli.cli.app import RunFailed
    from rlcli.config.fields import ConfigError
    from rlcli.study.runner import run_study

    if algo is not None or env is not None or resume is not None:
        raise ConfigError("--study runs the matrix of the study file; drop ALGO, --env and --resume "
                          "(rerunning the study resumes its unfinished runs)")
    if ray is not None and workers is not None:
        raise ConfigError("--workers sizes the local pool; with --ray the cluster's free resources decide")
    from rlcli.cli.display import make_count_reporter

    result = run_study(path, workers=workers, dry_run=dry_run, log=lambda line: print(line, flush=True),
                       reporter=make_count_reporter(), ray=ray)
    if result.interrupted:
        print(f"rlcli: study interrupted; continue with: rlcli train --study {path}", file=sys.stderr)
        raise typer.Exit(2)
    if result.failed:
        names = ", ".join(o.run.name for o in result.failed)
        raise RunFailed(f"{len(result.failed)} of {len(result.outcomes)} runs failed ({names}); their logs are in "
                        f"{result.study.runs_dir}/.study/; rerun the same command to retry them")
