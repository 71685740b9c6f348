"""``rlcli distill darkroom --histories data.h5``: train an Algorithm Distillation transformer on histories."""

from __future__ import annotations

import os

import typer

from rlcli.cli import values
from rlcli.cli.app import app, exit_interrupted, refuse


def histories_env(path: str) -> str:
    """The env id a histories file was collected on (its ``env`` attribute)."""
    from rlcli.storage.histories import HistoryReader

    reader = HistoryReader(path)
    try:
        return str(reader.env_params["id"])
    finally:
        reader.close()


def _env_of(histories: str, env: str | None) -> str:
    """The env the histories were collected on; ConfigError when ``env`` names another."""
    from rlcli.config.fields import ConfigError

    collected_on = histories_env(histories)
    if env is not None and env != collected_on:
        raise ConfigError(f"'{histories}' holds histories collected on '{collected_on}', not '{env}'; drop the "
                          f"ENV argument or pass histories collected on '{env}'")
    return collected_on


@app.command("distill")
def distill_command(
    env: str = typer.Argument(None, help=f"Environment: {', '.join(values.ad_envs())} (default: the histories' "
                              "env).", autocompletion=values.complete_env, show_default=False),
    histories: str = typer.Option(None, "--histories", help="Learning histories written by `rlcli collect` "
                                  "(ad.histories)."),
    preset: str = typer.Option(None, "--preset", "-p", help="Preset name or TOML file (default: darkroom-ad on "
                               "a GPU, darkroom-ad-small without).", autocompletion=values.complete_preset),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a key: --set ad.context_len=128.",
                                        autocompletion=values.complete_set),
    steps: int = typer.Option(None, "--steps", help="Gradient steps (run.total_steps)."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda.", autocompletion=values.complete_device),
    runs_dir: str = typer.Option(None, "--runs-dir", help="Folder for run folders (default runs/)."),
    name: str = typer.Option(None, "--name", help="Run folder name."),
    resume: str = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint.",
                               autocompletion=values.complete_run),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also write TensorBoard events."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check everything a run would, print the resolved "
                                 "config as TOML and exit."),
    config_options: bool = typer.Option(False, "--config-options", help="List every option with type, default and help."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain periodic progress lines instead of the live display."),
) -> None:
    """Distill the source algorithm into a causal transformer; evaluates it in context on held-out tasks.

    Example: [bold]rlcli distill darkroom --histories histories.h5 --preset darkroom-ad-small[/bold]
    """
    import sys

    from rlcli.cli.collect import print_ad_options
    from rlcli.cli.display import make_reporter
    from rlcli.config.fields import ConfigError

    if config_options:
        print_ad_options("distill", env, preset, overrides)
        return
    if resume is not None:
        refuse({"--preset": preset, "--name": name, "--runs-dir": runs_dir, "--histories": histories},
               "with --resume: the run keeps its folder, histories and resolved config")
    extra: dict = {"run": {}, "ad": {}}
    for key, value in (("total_steps", steps), ("device", device), ("runs_dir", runs_dir), ("name", name)):
        if value is not None:
            extra["run"][key] = value
    if tensorboard:
        extra["run"]["tensorboard"] = True
    if histories is not None:
        extra["ad"]["histories"] = histories
    extra = {k: v for k, v in extra.items() if v}
    if resume is not None:
        from rlcli.cli.train import resumed_config

        cfg, note = resumed_config(resume, "ad", env, overrides, extra or None), None
    else:
        from rlcli.ad.distill import distill_config

        if histories is not None:  # the histories name the env; an ENV argument may only repeat it
            env = _env_of(histories, env)
        cfg, note = distill_config(env or "darkroom", preset, overrides, extra or None)
    if not cfg.ad.histories:
        raise ConfigError("distill needs the learning histories: --histories data.h5 (ad.histories)")
    _env_of(cfg.ad.histories, cfg.env.id)
    if note is not None and os.environ.get("RANK", "0") == "0":  # which preset was picked (rank 0 says it once)
        print(note, file=sys.stderr)
    if dry_run:
        sys.stdout.write(cfg.to_toml())
        return

    import rlcli
    from rlcli.engine.train import TrainingInterrupted

    try:
        result = rlcli.distill(cfg, resume=resume, reporter=make_reporter(quiet))
    except TrainingInterrupted as e:
        exit_interrupted(e.result, f"rlcli distill --resume {e.result.run_dir}")
    if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 alone reports
        return
    ev = (f"in-context return (last {cfg.ad.eval_last} of {cfg.ad.eval_episodes} episodes, {cfg.ad.eval_tasks} "
          f"tasks) {result.final_eval_return:.2f} ± {result.final_eval_std:.2f}"
          if result.final_eval_return is not None else "no new steps")
    print(f"done: {result.steps} gradient steps in {result.wall_time:.1f} s, {ev} -> {result.run_dir}")
