"""``rlcli train ALGO --env ENV ...``: resolve the config, call :func:`rlcli.train`, print a summary."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from rlcli import registry
from rlcli.cli import values
from rlcli.cli.app import app, exit_interrupted, refuse


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
    algo: str = typer.Argument(None, help=f"Algorithm: {values.algo_list()}.", autocompletion=values.complete_algo,
                               show_default=False),
    env: str = typer.Option(None, "--env", "-e", help=f"Environment: {values.env_list()}.",
                            autocompletion=values.complete_env),
    preset: str = typer.Option(None, "--preset", "-p", help="Preset name (presets/NAME.toml) or a TOML file.",
                               autocompletion=values.complete_preset),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a key: --set ppo.learning_rate=1e-3 "
                                        "(repeatable).", autocompletion=values.complete_set),
    policy: str = typer.Option(None, "--policy", help=f"Policy network: {values.policy_list()}.",
                               autocompletion=values.complete_policy),
    technique: str = typer.Option(None, "--technique", help=f"{', '.join(registry.TECHNIQUES)}.",
                                  autocompletion=values.complete_technique),
    seeds: list[int] = typer.Option([], "--seeds", help="Train one run per seed: --seeds 0 1 2."),
    steps: int = typer.Option(None, "--steps", help="Total env steps (run.total_steps)."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda.", autocompletion=values.complete_device),
    runs_dir: str = typer.Option(None, "--runs-dir", help="Folder for run folders (default runs/)."),
    name: str = typer.Option(None, "--name", help="Run folder name."),
    resume: str = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint.",
                               autocompletion=values.complete_run),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also write TensorBoard events."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check everything a run would, print the resolved "
                                 "config as TOML and exit."),
    config_options: bool = typer.Option(False, "--config-options", help="List every option (of ALGO with "
                                        "--env and --policy) with type, default and help."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain periodic progress lines instead of the live display."),
    study: str = typer.Option(None, "--study", help="Run the experiment matrix of a study file, e.g. "
                              "presets/generalization.toml.", autocompletion=values.complete_study),
    workers: int = typer.Option(None, "--workers", min=1, help="With --study: runs at a time (default: the file's study.workers)."),
    ray: str = typer.Option(None, "--ray", metavar="auto|ADDRESS", help="With --study: run each run as a Ray task on this cluster (auto: the one started here, else a local one)."),
) -> None:
    """Train an agent; the run folder gets config.toml, metrics.h5 and checkpoints/.

    Example: [bold]rlcli train ppo --env cartpole --seeds 0 1 2[/bold] (then [bold]rlcli eval runs/NAME[/bold])
    """
    from rlcli.cli.display import make_reporter
    from rlcli.config.fields import ConfigError

    if study is not None:
        refuse({"ALGO": algo, "--env": env, "--preset": preset, "--set": overrides, "--policy": policy,
                "--technique": technique, "--seeds": seeds, "--steps": steps, "--device": device,
                "--runs-dir": runs_dir, "--name": name, "--resume": resume, "--tensorboard": tensorboard,
                "--config-options": config_options},
               "with --study: the study file sets every run (rerunning it resumes unfinished runs)")
        _train_study(study, workers, dry_run, ray)
        return
    if ray is not None:
        raise ConfigError("--ray runs the runs of a study on a Ray cluster; use it with --study FILE")
    if workers is not None:
        raise ConfigError("--workers sets how many runs of a study run at a time; use it with --study FILE")
    if config_options:
        from rlcli.cli.display import print_options
        from rlcli.config.schema import describe_options

        target = _trained_here(algo or "ppo")
        cfg = config_from_args(target, env, preset, overrides, policy, technique, steps, device, runs_dir, name,
                               tensorboard)
        print_options(describe_options(target, resolved=cfg),
                      f"rlcli train {target}: options (set with --set key=value; defaults as this command "
                      "line resolves them)")
        return
    if resume is not None:
        refuse({"--preset": preset, "--seeds": seeds, "--name": name, "--runs-dir": runs_dir},
               "with --resume: the run keeps its folder, seed and resolved config")
    elif algo is not None:
        _trained_here(algo)
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
        _check_run_folders(configs, resume)
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


def _check_run_folders(configs: list, resume: str | None) -> None:
    """What training checks first about its folder, checked for --dry-run too: a named run folder must not
    hold a run yet (rlcli.train refuses it), and a resumed one must hold a readable last checkpoint."""
    from rlcli.config.fields import ConfigError

    if resume is not None:
        from rlcli.storage.checkpoint import read_checkpoint_attrs
        from rlcli.storage.runs import CHECKPOINT_LAST

        read_checkpoint_attrs(Path(resume) / CHECKPOINT_LAST)
        return
    for cfg in configs:
        run_dir = Path(cfg.run.runs_dir) / cfg.run.name
        if cfg.run.name and run_dir.is_dir() and any(run_dir.iterdir()):
            raise ConfigError(f"run folder '{run_dir}' already exists; pick another --name or --resume it")


def _trained_here(algo: str) -> str:
    """``algo`` when ``rlcli train`` trains it; ConfigError naming the command that does otherwise."""
    from rlcli.config.fields import ConfigError

    spec = registry.algo_spec(algo)
    if spec.command != "train":
        raise ConfigError(f"{algo} is not trained by `rlcli train`: use `rlcli {spec.command}` ({spec.description})")
    return algo


def _train_study(path: str, workers: int | None, dry_run: bool, ray: str | None = None) -> None:
    """``rlcli train --study FILE [--workers N | --ray auto|ADDRESS] [--dry-run]``: exit 1 when any run failed."""
    from rlcli.cli.app import RunFailed
    from rlcli.cli.display import make_count_reporter
    from rlcli.config.fields import ConfigError
    from rlcli.study.runner import run_study

    if ray is not None and workers is not None:
        raise ConfigError("--workers sizes the local pool; with --ray the cluster's free resources decide")
    result = run_study(path, workers=workers, dry_run=dry_run, log=lambda line: print(line, flush=True),
                       reporter=make_count_reporter(), ray=ray)
    if result.interrupted:
        print(f"rlcli: study interrupted; continue with: rlcli train --study {path}", file=sys.stderr)
        raise typer.Exit(2)
    if result.failed:
        names = ", ".join(o.run.name for o in result.failed)
        raise RunFailed(f"{len(result.failed)} of {len(result.outcomes)} runs failed ({names}); their logs are in "
                        f"{result.study.runs_dir}/.study/; rerun the same command to retry them")
