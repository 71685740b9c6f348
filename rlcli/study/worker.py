"""One study run in its own process: ``python -m rlcli.study.worker CONFIG RUN_DIR MODE LEVELS EPISODES``.

MODE: ``new`` trains from scratch with the resolved config in the file CONFIG; ``resume`` continues the
run in RUN_DIR from its last checkpoint to CONFIG's ``run.total_steps``; ``evaluate`` only evaluates.
Every mode ends with the shift evaluation (``rlcli eval RUN_DIR --shift LEVELS``), stored in
``RUN_DIR/shift.h5``. Output goes to the study's log of this run; any failure exits non-zero, and the
runner carries on with the other runs.

The worker dies with the runner that started it (pid in the environment variable ``RLCLI_STUDY_PARENT``):
on Linux the kernel signals it when the runner dies (``prctl(PR_SET_PDEATHSIG)``), and a thread that
notices the new parent pid within a second does the same elsewhere; either becomes one SIGINT. SIGINT is Ctrl-C to the training
loop: it saves a checkpoint at the end of the iteration and stops, so the rerun study resumes the run.
The worker holds the run folder's lock while it writes (``train`` takes it; the shift evaluation too).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

PARENT_ENV = "RLCLI_STUDY_PARENT"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_SECONDS = 1.0


def die_with_parent(parent: int) -> None:
    """SIGINT to this process, once, when ``parent`` dies (at once when it is already gone).

    The kernel signal is SIGUSR1, turned into a single SIGINT here: a multi-threaded parent (the runner's
    thread pool) can make the kernel send the death signal more than once, and a second SIGINT would
    abort the run without its checkpoint.
    """
    fired = False

    def on_parent_death(signum, frame) -> None:
        nonlocal fired
        if not fired:
            fired = True
            signal.raise_signal(signal.SIGINT)

    signal.signal(signal.SIGUSR1, on_parent_death)
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGUSR1), 0, 0, 0)

    def watch() -> None:  # where prctl is missing, and for a death between fork and prctl
        while os.getppid() == parent:
            threading.Event().wait(PARENT_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGUSR1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    from rlcli.config.presets import load_run_config
    from rlcli.engine.progress import PlainReporter
    from rlcli.engine.train import TrainingInterrupted, train
    from rlcli.evaluation.grs import evaluate_shift
    from rlcli.storage.runs import RunLock

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
    with RunLock(run_dir):
        shift = evaluate_shift(run_dir, levels, episodes=int(episodes))
    curve = ", ".join(f"{lv:g}: {r:.2f}" for lv, r in zip(shift.levels, shift.mean_returns, strict=True))
    print(f"shift curve {{{curve}}}, GRS {shift.grs:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    if PARENT_ENV in os.environ:
        die_with_parent(int(os.environ[PARENT_ENV]))
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("interrupted outside training (starting up or evaluating); the study reruns this run", flush=True)
        sys.exit(2)
