"""``rlcli distill darkroom --histories data.h5``: train an Algorithm Distillation transformer on histories."""

from __future__ import annotations

import typer

from rlcli.cli.app import app, exit_interrupted


@app.command("distill")
def distill_command(
    env: str = typer.Argument("darkroom", help="Environment: darkroom."),
    histories: str = typer.Option(None, "--histories", help="Learning histories written by `rlcli collect` (ad.histories)."),
    preset: str = typer.Option(None, "--preset", "-p", help="Preset name or TOML file (default: darkroom-ad on a GPU, darkroom-ad-small without)."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a key: --set ad.context_len=128."),
    steps: int = typer.Option(None, "--steps", help="Gradient steps (run.total_steps)."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda."),
    runs_dir: str = typer.Option(None, "--runs-dir", help="Folder for run folders (default runs/)."),
    name: str = typer.Option(None, "--name", help="Run folder name."),
    resume: str = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also write TensorBoard events."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config as TOML and exit."),
    config_options: bool = typer.Option(False, "--config-options", help="List every option with type, default and help."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain periodic progress lines instead of the live display."),
) -> None:
    """Distill the source algorithm into a causal transformer; evaluates it in context on held-out tasks."""
    import sys

    from rlcli.cli.display import make_reporter, print_options

    if config_options:
        from rlcli.config.schema import describe_options

        print_options(describe_options("ad"), "rlcli collect/distill: options (set with --set key=value)")
        return
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

        cfg = resumed_config(resume, "ad", None, overrides, extra or None)
    else:
        from rlcli.ad.distill import distill_config

        cfg, note = distill_config(env, preset, overrides, extra or None)
        if note is not None:
            print(note, file=sys.stderr)
    if dry_run:
        sys.stdout.write(cfg.to_toml())
        return

    import rlcli
    from rlcli.engine.train import TrainingInterrupted

    try:
        result = rlcli.distill(cfg, resume=resume, reporter=make_reporter(quiet))
    except TrainingInterrupted as e:
        exit_interrupted(e.result, f"rlcli distill {env} --resume {e.result.run_dir}")
    ev = (f"in-context return (last {cfg.ad.eval_last} of {cfg.ad.eval_episodes} episodes, {cfg.ad.eval_tasks} "
          f"tasks) {result.final_eval_return:.2f} ± {result.final_eval_std:.2f}"
          if result.final_eval_return is not None else "no new steps")
    print(f"done: {result.steps} gradient steps in {result.wall_time:.1f} s, {ev} -> {result.run_dir}")
