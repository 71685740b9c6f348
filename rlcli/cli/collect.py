"""``rlcli collect darkroom --out data.h5``: learning histories of batched source agents (A2C or
explorers) for Algorithm Distillation."""

from __future__ import annotations

import typer

from rlcli.cli import values
from rlcli.cli.app import app


def ad_config(env: str | None, preset: str | None, overrides: list[str], extra: dict | None = None):
    """The ``ad`` pipeline config of a collect/distill command line (preset default: darkroom-ad)."""
    from rlcli.config.presets import resolve_config

    return resolve_config("ad", env=env, preset=preset or "darkroom-ad", overrides=overrides, extra=extra)


def print_ad_options(command: str, env: str | None, preset: str | None, overrides: list[str]) -> None:
    from rlcli.cli.display import print_options
    from rlcli.config.schema import describe_options

    cfg = ad_config(env, preset, overrides)
    print_options(describe_options("ad", resolved=cfg), f"rlcli {command}: options of the AD pipeline (set with --set "
                                               "key=value; collect reads run, env, collect and a2c, distill "
                                               "run, env and ad)")


@app.command("collect")
def collect_command(
    env: str = typer.Argument("darkroom", help=f"Environment: {', '.join(values.ad_envs())}.",
                              autocompletion=values.complete_env),
    out: str = typer.Option(None, "--out", "-o", help="HDF5 file for the histories (required; an interrupted "
                            "one resumes).", show_default=False),
    preset: str = typer.Option(None, "--preset", "-p", help="Preset name or TOML file (default darkroom-ad).",
                               autocompletion=values.complete_preset),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a key: --set collect.steps_per_agent=100000.",
                                        autocompletion=values.complete_set),
    tasks: int = typer.Option(None, "--tasks", help="Collect only the first N training tasks (collect.max_train_tasks)."),
    steps: int = typer.Option(None, "--steps", help="Env steps per agent (collect.steps_per_agent)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the task split and the agents (run.seed)."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda.", autocompletion=values.complete_device),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check everything a collection would, print the "
                                 "resolved config as TOML and exit."),
    config_options: bool = typer.Option(False, "--config-options", help="List every option with type, default and help."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain periodic progress lines instead of the live display."),
    convert: tuple[str, str] | None = typer.Option(None, "--convert", metavar="OLD NEW",
                                            help="Rewrite a format-2 histories file OLD as format 3 at NEW, and exit."),
    shards: int = typer.Option(None, "--shards", help="Collect in N shards over the agents (files beside --out, "
                                                     "joined by --out as their index); one after another without --ray."),
    ray: str = typer.Option(None, "--ray", metavar="auto|ADDRESS",
                            help="Run the shards as Ray tasks on this cluster (default --shards: the cluster's CPUs)."),
) -> None:
    """Run the source agents on DarkRoom tasks (A2C, or explorers with collect.source=explorer), all at once,
    streaming their learning histories to --out.

    Example: [bold]rlcli collect darkroom --out histories.h5 --preset darkroom-ad-explorer[/bold]
    """
    import sys

    from rlcli.cli.display import make_reporter
    from rlcli.config.fields import ConfigError

    if convert and convert[0] is not None:
        from pathlib import Path

        from rlcli.storage.histories import convert_histories

        if Path(convert[1]).exists():
            raise ConfigError(f"'{convert[1]}' exists; choose another output file")
        n = convert_histories(*convert)
        print(f"converted {n} histories: {convert[0]} -> {convert[1]}")
        return
    if config_options:
        print_ad_options("collect", env, preset, overrides)
        return
    extra: dict = {"collect": {}, "run": {}}
    if tasks is not None:
        extra["collect"]["max_train_tasks"] = tasks
    if steps is not None:
        extra["collect"]["steps_per_agent"] = steps
    if seed is not None:
        extra["run"]["seed"] = seed
    if device is not None:
        extra["run"]["device"] = device
    cfg = ad_config(env, preset, overrides, {k: v for k, v in extra.items() if v} or None)
    if out is None:
        raise ConfigError("collect needs --out FILE (or --convert OLD NEW): rlcli collect darkroom --out histories.h5")
    if dry_run:
        sys.stdout.write(cfg.to_toml())
        return

    import rlcli
    from rlcli.ad.collect import CollectionInterrupted

    if shards is not None or ray is not None:
        result = _collect_sharded(cfg, out, shards, ray, quiet)
    else:
        try:
            result = rlcli.collect(cfg, out, reporter=make_reporter(quiet))
        except CollectionInterrupted as e:
            print(f"rlcli: {e}", file=sys.stderr)
            raise typer.Exit(2) from None
    how = "resumed and finished" if result.resumed else "done"
    print(f"{how}: {result.num_agents} agents, {result.num_histories} histories, {result.env_steps} env steps in "
          f"{result.wall_time:.1f} s ({result.steps_per_second:.0f} steps/s); mean return of the train agents' "
          f"last curve point {result.final_train_return:.2f} -> {result.path}")


def _collect_sharded(cfg, out: str, shards: int | None, ray: str | None, quiet: bool):
    import sys

    from rlcli.ad.shards import ShardsInterrupted, collect_sharded
    from rlcli.cli.display import make_count_reporter

    try:
        return collect_sharded(cfg, out, shards, ray=ray, reporter=make_count_reporter(quiet))
    except ShardsInterrupted as e:
        print(f"rlcli: {e}", file=sys.stderr)
        raise typer.Exit(2) from None
