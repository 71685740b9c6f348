"""What opening a histories file and sampling windows costs as the number of histories grows (format 3).

    PYTHONPATH=. python benchmarks/histories_memory.py [--sizes 1000 10000 100000] [--length 100] [--dir DIR]

For each size it writes a file of that many short histories (``--length`` transitions each, streamed in four
appends of all histories, as a collection writes them), then, in a fresh process per file, opens it the way
``rlcli distill`` does (a HistoryReader, the training histories' lengths, a WindowSampler) and reads
``--windows`` windows of ``--context`` transitions. Prints per size: file size, HDF5 objects in the file, HDF5
objects the reader holds open, resident memory (VmRSS) after the imports, after opening, and after sampling,
and the time the sampling took. The bar (issue 19): memory flat in the number of histories, under 200 MB at 100k.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_file(path: Path, n_histories: int, length: int) -> None:
    import numpy as np

    from rlcli.storage.histories import HistorySpec, HistoryWriter

    rng = np.random.default_rng(0)
    specs = [HistorySpec(i % 57, "train", i, 0) for i in range(n_histories)]
    w = HistoryWriter(path, specs, {"size": 9, "max_steps": 20, "num_states": 81, "num_actions": 5},
                      list(range(57)), [], list(range(n_histories)), ["train"] * n_histories)
    part = length // 4
    for k in range(4):
        t = part if k < 3 else length - 3 * part
        time_step = (np.arange(k * part, k * part + t) % 20)[None].repeat(n_histories, 0)
        w.append(obs=rng.integers(0, 81, (n_histories, t)), action=rng.integers(0, 5, (n_histories, t)),
                 next_obs=rng.integers(0, 81, (n_histories, t)),
                 reward=(rng.random((n_histories, t)) < 0.05).astype(np.float32), done=time_step == 19,
                 time_step=time_step)
    w.mark_complete()
    w.close()


def measure(path: Path, windows: int, context: int) -> dict:
    import h5py

    from rlcli.ad.distill import WindowSampler
    from rlcli.storage.histories import HistoryReader

    after_imports = rss_mb()
    reader = HistoryReader(path)
    train = reader.select("train")
    sampler = WindowSampler([h.length for h in train], [h.index for h in train], context, seed=0)
    del train
    after_open = rss_mb()
    start = time.perf_counter()
    for _ in range(windows // 100):
        reader.windows(sampler.sample(100), context)
    sample_s = time.perf_counter() - start
    names: list[str] = []
    reader.file.visit(names.append)
    return {"histories": len(reader.histories), "file_mb": path.stat().st_size / 2**20,
            "file_objects": len(names), "open_objects": h5py.h5f.get_obj_count(reader.file.id, h5py.h5f.OBJ_ALL),
            "rss_imports_mb": after_imports, "rss_open_mb": after_open, "rss_sampled_mb": rss_mb(),
            "sample_s": sample_s}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    p.add_argument("--length", type=int, default=100, help="transitions per history")
    p.add_argument("--windows", type=int, default=1000)
    p.add_argument("--context", type=int, default=32)
    p.add_argument("--dir", default=None, help="where the files go (default: a temporary folder)")
    p.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # the child process: one file
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.windows, args.context)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{'histories':>10} {'file MB':>8} {'objects':>8} {'open':>5} {'RSS imports':>12} {'open':>8} "
              f"{'sampled':>8} {'+reader':>8} {'sample s':>9} {'write s':>8}")
        for n in args.sizes:
            path = folder / f"histories_{n}.h5"
            start = time.perf_counter()
            if not path.exists():
                write_file(path, n, args.length)
            write_s = time.perf_counter() - start
            out = subprocess.run([sys.executable, __file__, "--measure", str(path), "--windows", str(args.windows),
                                  "--context", str(args.context)], capture_output=True, text=True, check=True)
            m = json.loads(out.stdout)
            print(f"{m['histories']:>10} {m['file_mb']:>8.1f} {m['file_objects']:>8} {m['open_objects']:>5} "
                  f"{m['rss_imports_mb']:>12.0f} {m['rss_open_mb']:>8.0f} {m['rss_sampled_mb']:>8.0f} "
                  f"{m['rss_sampled_mb'] - m['rss_imports_mb']:>8.0f} {m['sample_s']:>9.2f} {write_s:>8.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
