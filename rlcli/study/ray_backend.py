"""Study runs as Ray tasks: ``rlcli train --study FILE --ray auto|ADDRESS``.

The study runner (:mod:`rlcli.study.runner`) decides what each run needs (new, resume, evaluate), writes
its config and log header, and records the outcome exactly as with the local pool; only the launch differs.
Each run becomes one Ray task, scheduled where the run's resources are free (``run.torch_threads`` CPUs, one
GPU when ``run.device = "cuda"``), and the task starts the same worker command the local pool starts
(``python -m rlcli.study.worker ...``) on its node.

- Storage: run folders and the study's logs must be on storage every node sees (a shared file system), at
  the same path. A task first checks that its node can write there and fails the run with that reason
  when it cannot.
- Node or worker death: Ray retries the task on another node (``MAX_RETRIES``). The retried task looks at
  the run folder again: with a last checkpoint it resumes from it, so no step is trained twice or lost
  (metrics logged after the checkpoint are dropped on resume); without one it starts the run afresh.
- Ctrl-C: the runner cancels the tasks; each forwards SIGINT to its worker, which saves a checkpoint
  and stops, as a local worker does.
- ``auto`` connects to the cluster started on this machine (``ray start``), or starts a local one;
  an address (``HOST:PORT`` or ``ray://HOST:PORT``) connects to that cluster.

Ray is an optional extra (``pip install 'rlcli[ray]'``); nothing imports it without ``--ray``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlcli.config.fields import ConfigError

MAX_RETRIES = 3  # a run whose node dies is tried again on another node this many times
POLL_SECONDS = 0.5  # how often a waiting runner thread looks at the interrupt flag


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray on this machine and on every node: pip install 'rlcli[ray]'") from None
    return ray


def retried_mode(run_dir: Path, mode: str) -> str:
    """The worker mode for a task that may be a retry: a run launched as new that already has a last
    checkpoint (its first attempt died after saving) resumes from it; one that left a folder without a
    checkpoint starts again from an empty folder."""
    from rlcli.storage.runs import CHECKPOINT_LAST

    if mode != "new" or not run_dir.exists():
        return mode
    if (run_dir / CHECKPOINT_LAST).is_file():
        return "resume"
    shutil.rmtree(run_dir)
    return "new"


def _die_with_parent() -> None:
    """In the worker, before it starts: get SIGKILL when the Ray worker process that started it dies (its
    node died or was killed). Ray then retries the task elsewhere, and an orphan still writing the run
    folder would train the same steps twice. Linux only; elsewhere a no-op."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _node_name() -> str:
    """host/node id (several Ray nodes may share a host)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    return f"{socket.gethostname()}/{node_id[:8]}" if node_id else socket.gethostname()


def run_on_node(cmd: list[str], log_path: str) -> tuple[int, str]:
    """The body of a run's Ray task, on whichever node runs it: (worker exit code, why it could not start).

    ``cmd`` is the local pool's worker command; its interpreter is replaced by this node's."""
    run_dir, mode = Path(cmd[4]), cmd[5]
    node = _node_name()
    try:  # the run folder's parent must be shared storage this node can write to
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        probe = run_dir.parent / f".ray-probe-{socket.gethostname()}-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
        mode = retried_mode(run_dir, mode)
        log = open(log_path, "a")  # noqa: SIM115 (held while the worker runs)
    except OSError as e:
        return -1, (f"node {node} cannot write to '{run_dir.parent}' ({e.strerror or e}); run folders must be "
                    f"on storage every Ray node sees, at the same path")
    argv = [sys.executable, *cmd[1:5], mode, *cmd[6:]]
    with log:
        log.write(f"--- on Ray node {node} (pid {os.getpid()}): {mode}\n")
        log.flush()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        try:
            return proc.wait(), ""
        except KeyboardInterrupt:  # ray.cancel: the worker checkpoints and stops, as on Ctrl-C
            proc.send_signal(signal.SIGINT)
            return proc.wait(), ""


class RayLauncher:
    """Runs study workers as Ray tasks; ``launch`` has the local subprocess call's shape (-> exit code)."""

    def __init__(self, address: str, interrupted: Callable[[], bool]):
        ray = _import_ray()
        self.ray, self.interrupted = ray, interrupted
        if not ray.is_initialized():
            try:
                ray.init(address=None if address == "auto" else address, log_to_driver=False,
                         configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ConfigError(f"cannot reach the Ray cluster at '{address}': {str(e).splitlines()[0]}") from None
        self.task = ray.remote(max_retries=MAX_RETRIES)(run_on_node)

    def launch(self, cfg: Any, cmd: list[str], log_path: Path) -> int:
        """Run ``cmd`` (a study worker command) as a Ray task with ``cfg``'s resources; -> its exit code.
        Raises OSError when no node could start it (its reason: the storage check)."""
        gpus = 1 if cfg.run.device == "cuda" else 0
        ref = self.task.options(num_cpus=max(1, cfg.run.torch_threads), num_gpus=gpus).remote(cmd, str(log_path))
        cancelled = False
        while True:
            ready, _ = self.ray.wait([ref], timeout=POLL_SECONDS)
            if ready:
                break
            if self.interrupted() and not cancelled:
                self.ray.cancel(ref)  # KeyboardInterrupt in the task: it forwards SIGINT to the worker
                cancelled = True
        try:
            rc, why = self.ray.get(ref)
        except self.ray.exceptions.TaskCancelledError:
            return 2
        except self.ray.exceptions.RayError as e:  # retries used up (nodes kept dying), or Ray itself failed
            raise OSError(f"Ray task failed: {str(e).splitlines()[0]}") from None
        if why:
            raise OSError(why)
        return rc

    def close(self) -> None:
        self.ray.shutdown()
