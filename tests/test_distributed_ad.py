"""Data-parallel AD distillation under torch.distributed (gloo, two CPU processes, as torchrun starts them).

Launched like tests/test_distributed.py (this file run as a script per rank, with torchrun's variables):
1. one gradient step on each rank's own windows; the parent repeats it in one process on the concatenated
   windows (the ranks' token counts differ: some windows are padded histories);
2. a short distillation in the real loop (with an in-run evaluation), the ranks' parameters compared
   bitwise after every step;
3. the same run interrupted (Ctrl-C on rank 0 only) and resumed, which must end with the same parameters.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import launch_two_ranks

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6
LENGTHS = [30, 7, 9, 12]  # with a 16-transition context: 15 full windows and three padded ones


def _histories(path: Path) -> None:
    from rlcli.storage.histories import HistorySpec, HistoryWriter

    rng = np.random.default_rng(0)
    h, t = len(LENGTHS), max(LENGTHS)
    w = HistoryWriter(path, [HistorySpec(task, "train", i, 0) for i, task in enumerate([3, 5, 7, 11])],
                      {"id": "darkroom", "size": 9, "max_steps": 20, "terminate_on_goal": True, "num_actions": 5,
                       "num_states": 81},
                      [3, 5, 7, 11], [20], [3, 5, 7, 11], ["train"] * h, other_tasks={"validation": [9]})
    w.append(keep=np.arange(t)[None, :] < np.asarray(LENGTHS)[:, None],
             obs=rng.integers(0, 81, (h, t)), action=rng.integers(0, 5, (h, t)),
             next_obs=rng.integers(0, 81, (h, t)), reward=(rng.random((h, t)) < 0.1).astype(np.float32),
             done=np.zeros((h, t), bool), time_step=np.tile(np.arange(t) % 20, (h, 1)))
    w.close()


def _cfg(out: Path, **overrides):
    import rlcli

    sets = [f"ad.histories={out / 'data.h5'}", f"run.runs_dir={out / 'runs'}", f"run.total_steps={STEPS}",
            "run.eval_every=3", "run.checkpoint_every=0", "run.torch_threads=1", "ad.context_len=16",
            "ad.embed_dim=16", "ad.num_layers=1", "ad.num_heads=2", "ad.ff_dim=32", "ad.batch_size=4",
            "ad.warmup_steps=2", "ad.success_window_fraction=0", "ad.eval_episodes=2", "ad.eval_repeats=1",
            *[f"{k}={v}" for k, v in overrides.items()]]
    return rlcli.resolve_config("ad", env="darkroom", preset="darkroom-ad-small", overrides=sets)


NO_DROPOUT = {"ad.residual_dropout": 0, "ad.attention_dropout": 0, "ad.embedding_dropout": 0,
              "ad.max_grad_norm": 1e9}  # the step compared with one process: nothing random, no clip


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def worker(out: Path) -> None:
    """One rank (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set as torchrun sets them)."""
    import torch.distributed as dist

    import rlcli
    import rlcli.engine.train as train_module
    from rlcli.engine import distributed
    from rlcli.engine.timing import PhaseTimer
    from rlcli.engine.train import TrainingInterrupted, build_algorithm

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()

    # 1. one gradient step on this rank's windows (the sampler's state before it names them)
    cfg = _cfg(out, **NO_DROPOUT)
    distributed.setup("ad", "cpu")
    algo = build_algorithm(distributed.rank_config(cfg))
    distributed.prepare(algo)
    sampler_state = algo.sampler.state()
    before = {k: v.clone() for k, v in algo.model.state_dict().items()}
    metrics = algo.iteration(PhaseTimer()).metrics
    grads = {n: p.grad.clone() for n, p in algo.model.named_parameters()}
    torch.save({"before": before, "after": algo.model.state_dict(), "grads": grads, "sampler": sampler_state,
                "metrics": metrics}, out / f"step{rank}.pt")
    algo.close()

    # 2. distillation in the loop: the ranks' parameters after every step
    built: list = []
    original = train_module.build_algorithm

    def capture(c, algorithm=None):
        built[:] = [original(c, algorithm)]
        return built[0]

    train_module.build_algorithm = capture  # to read the learner's parameters from the callback
    equal: list[str] = []

    def check(step: int) -> None:
        mine = _flat(built[0].model)
        theirs = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(theirs, mine)
        equal.append(f"{step}:{all(torch.equal(t, theirs[0]) for t in theirs)}")

    rlcli.distill(_cfg(out, **{"run.name": "whole"}), callbacks=[check])
    (out / f"equal{rank}.txt").write_text("\n".join(equal))

    # 3. interrupted at step 4 (Ctrl-C reaches rank 0 only), then resumed
    def ctrl_c(step: int) -> None:
        if step == 4 and rank == 0:
            os.kill(os.getpid(), signal.SIGINT)

    try:
        rlcli.distill(_cfg(out, **{"run.name": "halves"}), callbacks=[ctrl_c])
        raise AssertionError("not interrupted")
    except TrainingInterrupted as e:
        assert e.result.steps == 4
    rlcli.distill(_cfg(out, **{"run.name": "halves"}), resume=out / "runs" / "halves")
    dist.destroy_process_group()



@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ad_ranks")
    _histories(out / "data.h5")
    launch_two_ranks(__file__, out)
    return out


def test_one_ad_step_on_two_ranks_equals_one_step_on_the_concatenated_windows(two_ranks):
    from rlcli.ad.windows import read_windows
    from rlcli.engine.timing import PhaseTimer
    from rlcli.engine.train import build_algorithm

    torch.set_num_threads(1)
    r0, r1 = (torch.load(two_ranks / f"step{r}.pt") for r in range(2))
    for k in r0["after"]:  # rank 0's initial weights were broadcast and every rank took the same step
        assert torch.equal(r0["before"][k], r1["before"][k]) and torch.equal(r0["after"][k], r1["after"][k])
    assert r0["metrics"] == r1["metrics"]
    algo = build_algorithm(_cfg(two_ranks, **{**NO_DROPOUT, "ad.batch_size": 8}))
    picks = []
    for r in (r0, r1):  # each rank's windows, drawn again from its sampler's state
        algo.sampler.load_state(r["sampler"])
        picks.append(algo.sampler.sample(4))
    assert picks[0] != picks[1]  # each rank drew its own windows
    tokens = [int(read_windows(algo.reader, p, 16)["mask"].sum()) for p in picks]
    assert tokens[0] != tokens[1]  # so the average of the ranks' mean losses would not be the global mean

    def concatenated(n: int) -> list[tuple[int, int]]:
        assert n == 8
        return picks[0] + picks[1]

    algo.sampler.sample = concatenated
    algo.model.load_state_dict(r0["before"])
    metrics = algo.iteration(PhaseTimer()).metrics
    assert metrics["loss"] == pytest.approx(r0["metrics"]["loss"], abs=1e-6)
    assert metrics["accuracy"] == pytest.approx(r0["metrics"]["accuracy"], abs=1e-6)
    for n, p in algo.model.named_parameters():
        torch.testing.assert_close(p.grad, r0["grads"][n], atol=1e-6, rtol=0)
    moved = 0.0
    for k, v in algo.model.state_dict().items():
        torch.testing.assert_close(v, r0["after"][k], atol=1e-6, rtol=0)
        moved = max(moved, float((v - r0["before"][k]).abs().max()))
    assert moved > 1e-4  # the step did change the weights
    algo.close()


def test_ad_ranks_hold_bitwise_equal_parameters_after_every_step(two_ranks):
    from rlcli.storage.checkpoint import load_checkpoint
    from rlcli.storage.metrics import read_metrics

    for rank in range(2):
        assert (two_ranks / f"equal{rank}.txt").read_text().split() == [f"{s}:True" for s in range(1, STEPS + 1)]
    run = two_ranks / "runs" / "whole"
    assert sorted(p.name for p in run.iterdir() if p.name != ".lock") == ["checkpoints", "config.toml", "metrics.h5"]
    ckpt = load_checkpoint(run / "checkpoints" / "last.h5")
    assert ckpt.attrs["step"] == STEPS and ckpt.documents["world_size"] == 2
    assert ckpt.documents["ranks"]["1"]["sampler_rng"] != ckpt.documents["sampler_rng"]
    assert (run / "checkpoints" / "best.h5").exists()
    metrics = read_metrics(run / "metrics.h5")
    assert metrics["wall_time"][:, 0].tolist() == list(range(1, STEPS + 1))  # rank 0 logged each step once
    assert metrics["eval_return"][:, 0].tolist() == [3, STEPS]


def test_ad_interrupted_and_resumed_on_two_ranks_ends_where_the_whole_run_does(two_ranks):
    from rlcli.storage.checkpoint import load_checkpoint

    whole = load_checkpoint(two_ranks / "runs" / "whole" / "checkpoints" / "last.h5")
    halves = load_checkpoint(two_ranks / "runs" / "halves" / "checkpoints" / "last.h5")
    assert halves.attrs["step"] == STEPS
    for name in ("model", "optimizer", "ranks/1/rng"):
        a, b = _leaves(whole.tensors(name)), _leaves(halves.tensors(name))
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), (name, k)
    assert whole.documents["ranks"]["1"]["sampler_rng"] == halves.documents["ranks"]["1"]["sampler_rng"]


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        return {k2: v2 for k, v in tree.items() for k2, v2 in _leaves(v, f"{prefix}{k}/").items()}
    return {prefix: tree}


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
