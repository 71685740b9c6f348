"""HDF5 checkpoints and metrics: round trips, atomic writes and clear errors for corrupt files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from rlcli.storage.checkpoint import load_checkpoint, optimizer_from_tree, optimizer_to_tree, save_checkpoint
from rlcli.storage.errors import CorruptFileError
from rlcli.storage.metrics import MetricsWriter, read_metrics
from tests.conftest import REPO


def test_checkpoint_round_trips_model_and_optimizer(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    opt_state, groups = optimizer_to_tree(opt)
    path = tmp_path / "ckpt.h5"
    save_checkpoint(path, {"model": model.state_dict(), "optimizer": opt_state,
                           "stats": {"mean": np.arange(3.0)}}, {"step": 42, "algo": "ppo"}, {"groups": groups})
    ckpt = load_checkpoint(path)
    assert ckpt.attrs["step"] == 42 and ckpt.attrs["algo"] == "ppo"
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt.tensors("model")[k], v)
    np.testing.assert_array_equal(ckpt.tensors("stats")["mean"], np.arange(3.0))
    opt2 = torch.optim.Adam(model.parameters(), lr=1.0)
    optimizer_from_tree(opt2, ckpt.tensors("optimizer"), ckpt.documents["groups"])
    assert opt2.param_groups[0]["lr"] == 1e-3
    for a, b in zip(opt.state.values(), opt2.state.values(), strict=True):
        assert torch.equal(a["exp_avg"], b["exp_avg"])
    with h5py.File(path) as f:  # no pickle: every dataset is numbers or text
        dtypes = []
        f.visititems(lambda name, obj: dtypes.append(obj.dtype) if isinstance(obj, h5py.Dataset) else None)
        assert dtypes and all(d.kind in "biuf" or h5py.check_string_dtype(d) is not None for d in dtypes)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "ckpt.h5"
    save_checkpoint(path, {"model": {"w": torch.ones(1000)}}, {"step": 1}, {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="ckpt.h5"):
        load_checkpoint(path)


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "ckpt.h5"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}}, {"step": 1}, {})
    with pytest.raises(TypeError):
        save_checkpoint(path, {"model": {"w": object()}}, {"step": 2}, {})
    assert load_checkpoint(path).attrs["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.h5"], "no temporary file is left behind"


def test_metrics_append_and_truncate_on_resume(tmp_path):
    path = tmp_path / "metrics.h5"
    w = MetricsWriter(path)
    for step in (100, 200, 300):
        w.log(step, loss=step / 100)
    w.flush()
    assert read_metrics(path)["loss"][:, 0].tolist() == [100, 200, 300]
    w2 = MetricsWriter(path, truncate_after_step=200)  # resuming from a checkpoint at step 200
    w2.log(300, loss=9.0)
    w2.flush()
    np.testing.assert_array_equal(read_metrics(path)["loss"], [[100, 1], [200, 2], [300, 9]])


def test_corrupt_metrics_file_is_a_clear_error(tmp_path):
    path = tmp_path / "metrics.h5"
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(CorruptFileError, match="metrics.h5"):
        read_metrics(path)
    with pytest.raises(CorruptFileError, match="metrics.h5"):
        MetricsWriter(path, truncate_after_step=0)
    assert path.read_bytes() == b"not hdf5 at all"


def test_metrics_reader_never_blocks_the_writer(tmp_path):
    import time

    path = tmp_path / "metrics.h5"
    w = MetricsWriter(path)
    w.log(1, loss=1.0)
    w.flush()
    assert read_metrics(path)["loss"].shape == (1, 2)
    # another process reading with HDF5's default lock (a notebook's h5py.File) does not delay the next write:
    # the writer renames a new file over the one the reader holds open
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time; f = h5py.File(sys.argv[1], 'r'); "
                               "print('open', flush=True); time.sleep(1.0)", str(path)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    w.log(2, loss=2.0)
    start = time.monotonic()
    w.flush()
    waited = time.monotonic() - start
    holder.wait(timeout=30)
    assert waited < 0.5
    assert read_metrics(path)["loss"][:, 0].tolist() == [1, 2]


def test_run_lock_names_its_holder_and_dies_with_it(tmp_path):
    import os
    import subprocess
    import sys

    from rlcli.config.fields import ConfigError
    from rlcli.storage.runs import RunLock, lock_holder

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from rlcli.storage.runs import RunLock; "
                               "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)", str(run)],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout.readline().strip() == "held"
    assert lock_holder(run) == holder.pid
    with pytest.raises(ConfigError, match=f"in use by process {holder.pid}"):
        RunLock(run).acquire()
    holder.kill()
    holder.wait()
    assert lock_holder(run) is None
    with RunLock(run):
        assert lock_holder(run) == os.getpid()
    assert (run / ".lock").read_bytes() == b"", "taking the lock writes nothing"


def test_atomic_writes_refuse_links_and_leave_no_temporary_file(tmp_path):
    from rlcli.config.fields import ConfigError
    from rlcli.storage.files import write_atomic

    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "link.h5").symlink_to(victim)
    with pytest.raises(ConfigError, match="symbolic link"):
        write_atomic(tmp_path / "link.h5", b"data")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        write_atomic(tmp_path / "folder", b"data")
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "link.h5", "victim"]
