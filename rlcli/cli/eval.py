"""``rlcli eval RUN_OR_CHECKPOINT``: play episodes of a saved policy and print mean ± std."""

from __future__ import annotations

from pathlib import Path

import typer

from rlcli.cli import values
from rlcli.cli.app import app, refuse

VIDEO_SUFFIXES = (".gif", ".mp4")
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def checkpoint_file(run: str, checkpoint: str) -> tuple[str, str]:
    """(run or file, last/best) for ``--checkpoint``: last, best, or a checkpoint file (a path, or a file name
    in RUN/checkpoints/); ConfigError for anything else, which would otherwise silently mean last."""
    from rlcli.config.fields import ConfigError, close_match

    if checkpoint in values.CHECKPOINT_CHOICES:
        return run, checkpoint
    for candidate in (Path(checkpoint), Path(run, "checkpoints", checkpoint), Path(run, "checkpoints", f"{checkpoint}.h5")):
        if candidate.suffix == ".h5" and candidate.is_file():
            return str(candidate), "last"
    raise ConfigError(f"--checkpoint must be last, best or a checkpoint file, got '{checkpoint}'"
                      f"{close_match(checkpoint, list(values.CHECKPOINT_CHOICES))}")


def saved_config(run: str, checkpoint: str, overrides: list[str]):
    """The config saved in the checkpoint, with ``--set`` lines on top, checked as a run would check it."""
    import tomllib

    from rlcli.config.fields import ConfigError
    from rlcli.config.presets import parse_override
    from rlcli.config.schema import build_config
    from rlcli.storage.checkpoint import read_checkpoint_attrs
    from rlcli.storage.runs import resolve_checkpoint

    path = resolve_checkpoint(run, checkpoint)
    try:  # the file's own config first, so a fault in it names the file (a --set fault names the key)
        saved = tomllib.loads(str(read_checkpoint_attrs(path).get("config", "")))
        build_config(saved.get("algo", ""), [saved])
    except (tomllib.TOMLDecodeError, ConfigError) as e:
        raise ConfigError(f"'{path}' holds an invalid config: {e}") from None
    return build_config(saved["algo"], [saved] + [parse_override(o) for o in overrides])


def check_suffix(flag: str, path: str, suffixes: tuple[str, ...]) -> None:
    from rlcli.config.fields import ConfigError

    if Path(path).suffix.lower() not in suffixes:
        raise ConfigError(f"{flag} file '{path}' must end in {', '.join(suffixes[:-1])} or {suffixes[-1]}")


@app.command("eval")
def eval_command(
    run: str = typer.Argument(..., help="A run folder (runs/<name>) or a checkpoint .h5 file.",
                              autocompletion=values.complete_run, show_default=False),
    episodes: int = typer.Option(10, "--episodes", "-n", min=1, help="Episodes to play."),
    stochastic: bool = typer.Option(False, "--stochastic", help="Sample actions instead of the greedy action."),
    video: str = typer.Option(None, "--video", help="Record one episode to FILE.gif or FILE.mp4."),
    checkpoint: str = typer.Option("last", "--checkpoint", help="Which checkpoint of a run folder: last, best or "
                                   "a checkpoint file.", autocompletion=values.complete_checkpoint),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Change the eval env, e.g. --set "
                                        "env.variation_level=0.5.", autocompletion=values.complete_set),
    shift: str = typer.Option(None, "--shift", help="Evaluate at each variation level, e.g. 0,0.25,0.5,0.75,1; "
                              "prints the curve and its GRS and stores them in <run>/shift.h5."),
    attention: str = typer.Option(None, "--attention", help="Draw the vit-explorative tokens' attention maps "
                                  "for a few frames to FILE.png."),
    mc_dropout: int = typer.Option(0, "--mc-dropout", min=0, help="Keep dropout on, sample K masks per step, act on "
                                   "their mean and report the spread of action probabilities (0 = off)."),
    tasks: str = typer.Option(None, "--tasks", help="AD runs: evaluate in context on the test (default), "
                              "validation or train tasks.", autocompletion=values.complete_ad_tasks),
    repeats: int = typer.Option(None, "--repeats", min=1, help="AD runs: in-context runs per task (default: at least "
                                "92 runs in all, 4 per task on the 23 test tasks)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the evaluation episodes; AD runs: of the in-context action "
                             "sampling (default: the run's seed + 10000)."),
    gifs: int = typer.Option(None, "--gifs", min=0, help="AD runs: path GIFs for this many tasks (default 4)."),
    compare_histories: str = typer.Option(None, "--compare-histories", help="AD runs: also show the source agents "
                                          "of this histories file on the same tasks (say the A2C agents beside "
                                          "a run distilled from explorers)."),
    temperature: float = typer.Option(None, "--temperature", help="AD runs: sampling temperature of the in-context "
                                      "actions (default: the run's ad.temperature); choose it with --tasks "
                                      "validation, never on test."),
    ray: str = typer.Option(None, "--ray", help="AD runs: split the in-context runs across Ray tasks on the "
                            "cluster at ADDRESS (or auto); same results as without."),
) -> None:
    """Evaluate a saved policy (deterministic by default); AD runs are evaluated in context.

    Example: [bold]rlcli eval runs/NAME --episodes 20 --video ep.gif[/bold]
    """
    import rlcli
    from rlcli import registry
    from rlcli.cli.display import make_count_reporter
    from rlcli.config.fields import ConfigError

    run, checkpoint = checkpoint_file(run, checkpoint)
    cfg = saved_config(run, checkpoint, overrides)  # every check before an episode is played
    if cfg.algo == "ad":
        refuse({"--shift": shift, "--video": video, "--attention": attention, "--mc-dropout": mc_dropout,
                "--stochastic": stochastic, "--set": overrides},
               "on an Algorithm Distillation run (it is evaluated in context; see --tasks, --repeats, --gifs)")
        from rlcli.ad.evaluate import evaluate_ad
        from rlcli.cli.ad_display import print_ad_eval

        print_ad_eval(evaluate_ad(run, tasks=tasks or "test", episodes=episodes, repeats=repeats,
                                  gifs=4 if gifs is None else gifs, checkpoint=checkpoint, seed=seed,
                                  reporter=make_count_reporter(), ray=ray,
                                  compare_histories=compare_histories, temperature=temperature))
        return
    refuse({"--tasks": tasks, "--repeats": repeats, "--gifs": gifs, "--ray": ray,
            "--compare-histories": compare_histories, "--temperature": temperature},
           f"on a {cfg.algo} run (they are for Algorithm Distillation runs)")
    if shift is not None or mc_dropout:
        refuse({"--seed": seed}, "with --shift or --mc-dropout (they play from the run's evaluation seed)")
    policy = registry.policy_spec(cfg.policy.name)
    if video is not None:
        check_suffix("--video", video, VIDEO_SUFFIXES)
        if Path(video).suffix.lower() == ".mp4":
            import importlib.util

            if importlib.util.find_spec("imageio_ffmpeg") is None:
                raise ConfigError("writing .mp4 needs the package 'imageio_ffmpeg'; install the video extra with: "
                                  "pip install 'rlcli[video]' (or record a .gif)")
    if attention is not None:
        check_suffix("--attention", attention, FIGURE_SUFFIXES)
        if not policy.attention:
            have = [p.name for p in registry.policies() if p.attention]
            raise ConfigError(f"--attention needs a policy with attention maps ({', '.join(have)}); this run "
                              f"uses '{policy.name}'")
    if mc_dropout and not policy.dropout:
        have = [p.name for p in registry.policies() if p.dropout]
        raise ConfigError(f"--mc-dropout needs a policy with dropout ({', '.join(have)}); this run uses "
                          f"'{policy.name}'")

    if shift is not None:
        from rlcli.evaluation.grs import evaluate_shift

        refuse({"--video": video, "--attention": attention, "--mc-dropout": mc_dropout},
               "with --shift (it plays many episodes at each level; record or probe one level in a separate eval)")
        registry.refuse_without_variation(cfg.env.id, "--shift evaluates at several variation levels")
        if any(o.split("=", 1)[0].strip() == "env.variation_level" for o in overrides):
            raise ConfigError("--shift sets env.variation_level at each level; drop --set env.variation_level")
        res = evaluate_shift(run, shift, episodes=episodes, checkpoint=checkpoint, deterministic=not stochastic,
                             overrides=overrides, reporter=make_count_reporter())
        for level, mean, std in zip(res.levels, res.mean_returns, res.std_returns, strict=True):
            print(f"level {level:.2f}: return {mean:.2f} ± {std:.2f}")
        print(f"{res.checkpoint} (step {res.step}): GRS {res.grs:.3f} -> {res.path}")
        return
    if mc_dropout:
        refuse({"--video": video, "--attention": attention},
               "with --mc-dropout; record the video or draw the attention maps in a separate eval")
        mc = rlcli.mc_dropout_evaluate(run, mc_dropout, episodes=episodes, deterministic=not stochastic,
                                       checkpoint=checkpoint, overrides=overrides, reporter=make_count_reporter())
        print(f"{mc.checkpoint} (step {mc.step}), {episodes} episodes with {mc_dropout} dropout masks per step: "
              f"return {mc.returns.mean():.2f} ± {mc.returns.std():.2f}; action-probability std over masks "
              f"{mc.prob_std:.4f} mean, {mc.prob_std_max:.4f} max; greedy actions disagree on "
              f"{100 * mc.disagreement:.1f}% of steps")
        return
    result = rlcli.evaluate(run, episodes=episodes, deterministic=not stochastic, video=video,
                            checkpoint=checkpoint, overrides=overrides, seed=seed, reporter=make_count_reporter())
    mode = "stochastic" if stochastic else "deterministic"
    print(f"{result.checkpoint} (step {result.step}), {episodes} {mode} episodes: "
          f"return {result.mean_return:.2f} ± {result.std_return:.2f}, "
          f"length {result.lengths.mean():.1f} ± {result.lengths.std():.1f}")
    if result.video is not None:
        print(f"video: {result.video}")
    if attention is not None:
        from rlcli.report.attention import attention_figure

        print(f"attention maps: {attention_figure(run, attention, checkpoint=checkpoint)}")
