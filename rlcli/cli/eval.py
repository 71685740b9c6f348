"""``rlcli eval RUN_OR_CHECKPOINT``: play episodes of a saved policy and print mean ± std."""

from __future__ import annotations

import typer

from rlcli.cli.app import app


@app.command("eval")
def eval_command(
    run: str = typer.Argument(..., help="A run folder (runs/<name>) or a checkpoint .h5 file."),
    episodes: int = typer.Option(10, "--episodes", "-n", min=1, help="Episodes to play."),
    stochastic: bool = typer.Option(False, "--stochastic", help="Sample actions instead of the greedy action."),
    video: str = typer.Option(None, "--video", help="Record one episode to FILE.gif or FILE.mp4."),
    checkpoint: str = typer.Option("last", "--checkpoint", help="Which checkpoint of a run folder: last or best."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Change the eval env, e.g. --set env.variation_level=0.5."),
    shift: str = typer.Option(None, "--shift", help="Evaluate at each variation level, e.g. 0,0.25,0.5,0.75,1; "
                              "prints the curve and its GRS and stores them in <run>/shift.h5."),
    attention: str = typer.Option(None, "--attention", help="Draw the vit-explorative tokens' attention maps "
                                  "for a few frames to FILE.png."),
    mc_dropout: int = typer.Option(0, "--mc-dropout", min=0, help="Keep dropout on, sample K masks per step, act on "
                                   "their mean and report the spread of action probabilities (0 = off)."),
    tasks: str = typer.Option("test", "--tasks", help="AD runs: evaluate in context on the test, validation or train "
                              "tasks."),
    repeats: int = typer.Option(None, "--repeats", min=1, help="AD runs: in-context runs per task (default: at least "
                                "92 runs in all, 4 per task on the 23 test tasks)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the evaluation episodes; AD runs: of the in-context action "
                             "sampling (default: the run's seed + 10000)."),
    gifs: int = typer.Option(4, "--gifs", min=0, help="AD runs: path GIFs for this many tasks."),
) -> None:
    """Evaluate a saved policy (deterministic by default); AD runs are evaluated in context."""
    import rlcli
    from rlcli.ad.evaluate import is_ad_checkpoint
    from rlcli.cli.display import make_count_reporter

    if is_ad_checkpoint(run, checkpoint):
        from rlcli.ad.evaluate import evaluate_ad
        from rlcli.cli.ad_display import print_ad_eval

        print_ad_eval(evaluate_ad(run, tasks=tasks, episodes=episodes, repeats=repeats, gifs=gifs,
                                  checkpoint=checkpoint, seed=seed, reporter=make_count_reporter()))
        return

    if seed is not None and (shift is not None or mc_dropout):
        from rlcli.config.fields import ConfigError

        raise ConfigError("--seed applies to AD runs and plain evaluations, not to --shift or --mc-dropout")
    if shift is not None:
        from rlcli.config.fields import ConfigError
        from rlcli.evaluation.grs import evaluate_shift

        if video is not None:
            raise ConfigError("--video records one episode at one level; run it without --shift")
        res = evaluate_shift(run, shift, episodes=episodes, checkpoint=checkpoint, deterministic=not stochastic,
                             overrides=overrides, reporter=make_count_reporter())
        for level, mean, std in zip(res.levels, res.mean_returns, res.std_returns, strict=True):
            print(f"level {level:.2f}: return {mean:.2f} ± {std:.2f}")
        print(f"{res.checkpoint} (step {res.step}): GRS {res.grs:.3f} -> {res.path}")
        return
    if mc_dropout:
        if video is not None:
            from rlcli.config.fields import ConfigError

            raise ConfigError("--video and --mc-dropout cannot be combined; record the video in a separate eval")
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
