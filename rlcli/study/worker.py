"""One study run in its own process: ``python -m rlcli.study.worker CONFIG RUN_DIR MODE LEVELS EPISODES``.

MODE: ``new`` trains from scratch with the resolved config in the file CONFIG; ``resume`` continues the
run in RUN_DIR from its last checkpoint to CONFIG's ``run.total_steps``; ``evaluate`` only evaluates.
Every mode ends with the shift evaluation (``rlcli eval RUN_DIR --shift LEVELS``), stored in
``RUN_DIR/shift.h5``. Output goes to the study's log of this run; any failure exits non-zero, and the
runner carries on with the other runs.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from rlcli.config.presets import load_run_config
    from rlcli.engine.progress import PlainReporter
    from rlcli.engine.train import TrainingInterrupted, train
    from rlcli.evaluation.grs import evaluate_shift

    config_path, run_dir, mode, levels, episodes = argv
    cfg = load_run_config(config_path)
    if mode in ("new", "resume"):
        try:
            result = train(cfg, resume=run_dir if mode == "resume" else None, reporter=PlainReporter(interval=5.0))
        except TrainingInterrupted as e:
            print(f"interrupted: {e}; the study resumes this run when it is rerun", flush=True)
            return 2
        print(f"trained {result.steps} steps in {result.wall_time:.1f} s, final eval return "
              f"{result.final_eval_return}", flush=True)
    shift = evaluate_shift(run_dir, levels, episodes=int(episodes))
    curve = ", ".join(f"{lv:g}: {r:.2f}" for lv, r in zip(shift.levels, shift.mean_returns, strict=True))
    print(f"shift curve {{{curve}}}, GRS {shift.grs:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
