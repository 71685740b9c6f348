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
    tasks: str = typer.Option("test", "--tasks", help="AD runs: evaluate in context on the test, train or all tasks."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="AD runs: in-context runs per task."),
    gifs: int = typer.Option(4, "--gifs", min=0, help="AD runs: path GIFs for this many tasks."),
) -> None:
    """Evaluate a saved policy (deterministic by default); AD runs are evaluated in context."""
    import rlcli
    from rlcli.evaluation.ad_eval import is_ad_checkpoint

    if is_ad_checkpoint(run, checkpoint):
        from rlcli.cli.ad_display import print_ad_eval
        from rlcli.evaluation.ad_eval import evaluate_ad

        print_ad_eval(evaluate_ad(run, tasks=tasks, episodes=episodes, repeats=repeats, gifs=gifs,
                                  checkpoint=checkpoint))
        return

    result = rlcli.evaluate(run, episodes=episodes, deterministic=not stochastic, video=video,
                            checkpoint=checkpoint, overrides=overrides)
    mode = "stochastic" if stochastic else "deterministic"
    print(f"{result.checkpoint} (step {result.step}), {episodes} {mode} episodes: "
          f"return {result.mean_return:.2f} ± {result.std_return:.2f}, "
          f"length {result.lengths.mean():.1f} ± {result.lengths.std():.1f}")
    if result.video is not None:
        print(f"video: {result.video}")
