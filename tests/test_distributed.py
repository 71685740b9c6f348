"""Data-parallel PPO under torch.distributed (gloo, two CPU processes, as torchrun starts them).

One pair of worker processes (this file run as a script, with torchrun's environment variables) does three
things in one process group, and the tests check what they left behind:
1. one PPO update on each rank's own rollout; the parent repeats it in one process on the concatenated batch;
2. a short training run in the real loop, comparing the ranks' parameters bitwise after every iteration;
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
STEPS = 2048  # 4 iterations of 2 ranks x 4 envs x 64 steps


def _cfg(runs_dir: str, **overrides):
    import rlcli

    sets = [f"run.total_steps={STEPS}", f"run.runs_dir={runs_dir}", "run.eval_episodes=2", "run.eval_every=0",
            "env.num_envs=4", "ppo.num_steps=64", "ppo.anneal_lr=false",
            *[f"{k}={v}" for k, v in overrides.items()]]
    return rlcli.resolve_config("ppo", env="cartpole", overrides=sets)


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def worker(out: Path) -> None:
    """One rank (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set as torchrun sets them)."""
    import torch.distributed as dist

    import rlcli
    from rlcli.engine import distributed
    from rlcli.engine.gae import compute_gae
    from rlcli.engine.timing import PhaseTimer
    from rlcli.engine.train import TrainingInterrupted, build_algorithm

    torch.set_num_threads(1)
    dist.init_process_group("gloo")  # ours: train() joins it and leaves it open
    rank = dist.get_rank()
    runs = str(out / "runs")

    # 1. one update (two epochs of one minibatch) on this rank's rollout
    cfg = _cfg(runs, **{"ppo.num_minibatches": 1, "ppo.num_epochs": 2})
    distributed.setup("ppo", "cpu")
    algo = build_algorithm(distributed.rank_config(cfg))
    distributed.prepare(algo)
    _, _, next_value = algo.collector.collect(PhaseTimer())
    buf = algo.collector.buffer
    adv, ret = compute_gae(buf["rewards"], buf["values"], buf["dones"], next_value, cfg.ppo.gamma,
                           cfg.ppo.gae_lambda)
    batch = buf.flat({"advantages": adv, "returns": ret})
    before = {k: v.clone() for k, v in algo.policy.state_dict().items()}
    algo.update(batch)
    torch.save({"before": before, "after": algo.policy.state_dict(), "batch": batch}, out / f"update{rank}.pt")
    algo.close()

    # 2. training in the loop: the ranks' parameters after every iteration
    hashes: list[str] = []

    def check(algo_ref):
        def callback(step: int) -> None:
            mine = _flat(algo_ref[0].policy)
            theirs = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
            dist.all_gather(theirs, mine)
            hashes.append(f"{step}:{all(torch.equal(t, theirs[0]) for t in theirs)}")
        return callback

    import rlcli.engine.train as train_module

    built: list = []
    original = train_module.build_algorithm

    def capture(c, algorithm=None):
        built[:] = [original(c, algorithm)]
        return built[0]

    train_module.build_algorithm = capture  # to read the learner's parameters from the callback
    rlcli.train(_cfg(runs, **{"run.name": "whole"}), callbacks=[check(built)])
    (out / f"hashes{rank}.txt").write_text("\n".join(hashes))

    # 3. interrupted at step 1024 (Ctrl-C reaches rank 0 only), then resumed
    def ctrl_c(step: int) -> None:
        if step == 1024 and rank == 0:
            os.kill(os.getpid(), signal.SIGINT)

    try:
        rlcli.train(_cfg(runs, **{"run.name": "halves"}), callbacks=[ctrl_c])
        raise AssertionError("not interrupted")
    except TrainingInterrupted as e:
        assert e.result.steps == 1024
    rlcli.train(_cfg(runs, **{"run.name": "halves"}), resume=Path(runs) / "halves")
    dist.destroy_process_group()



@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ranks")
    launch_two_ranks(__file__, out)
    return out


def test_one_update_on_two_ranks_equals_one_update_on_the_concatenated_batch(two_ranks):
    from rlcli.engine.train import build_algorithm

    torch.set_num_threads(1)
    r0, r1 = (torch.load(two_ranks / f"update{r}.pt") for r in range(2))
    for k in r0["before"]:  # rank 0's initial weights were broadcast
        assert torch.equal(r0["before"][k], r1["before"][k])
    for k in r0["after"]:  # and every rank took the same step
        assert torch.equal(r0["after"][k], r1["after"][k])
    assert not torch.equal(r0["batch"]["obs"], r1["batch"]["obs"])  # each rank stepped its own envs
    algo = build_algorithm(_cfg(str(two_ranks / "single"), **{"ppo.num_minibatches": 1, "ppo.num_epochs": 2}))
    algo.policy.load_state_dict(r0["before"])
    batch = {k: torch.cat([r0["batch"][k], r1["batch"][k]]) for k in r0["batch"]}
    algo.batch_size = algo.minibatch_size = len(batch["obs"])
    algo.update(batch)
    moved = 0.0
    for k, v in algo.policy.state_dict().items():
        torch.testing.assert_close(v, r0["after"][k], atol=1e-6, rtol=0)
        moved = max(moved, float((v - r0["before"][k]).abs().max()))
    assert moved > 1e-4  # the update did change the weights
    algo.close()


def test_ranks_hold_bitwise_equal_parameters_after_every_update(two_ranks):
    for rank in range(2):
        lines = (two_ranks / f"hashes{rank}.txt").read_text().split()
        assert lines == [f"{s}:True" for s in range(512, STEPS + 1, 512)]
    run = two_ranks / "runs" / "whole"
    assert sorted(p.name for p in run.iterdir() if p.name != ".lock") == ["checkpoints", "config.toml", "metrics.h5"]
    from rlcli.storage.checkpoint import load_checkpoint
    from rlcli.storage.metrics import read_metrics

    ckpt = load_checkpoint(run / "checkpoints" / "last.h5")
    assert ckpt.attrs["step"] == STEPS and ckpt.documents["world_size"] == 2 and ckpt.has("ranks/1/collector")
    assert read_metrics(run / "metrics.h5")["wall_time"][:, 0].tolist() == [512, 1024, 1536, 2048]  # once each


def test_interrupted_and_resumed_on_two_ranks_ends_where_the_whole_run_does(two_ranks):
    from rlcli.storage.checkpoint import load_checkpoint

    whole = load_checkpoint(two_ranks / "runs" / "whole" / "checkpoints" / "last.h5")
    halves = load_checkpoint(two_ranks / "runs" / "halves" / "checkpoints" / "last.h5")
    assert halves.attrs["step"] == STEPS
    for name in ("model", "ranks/1/collector"):
        a, b = whole.tensors(name), halves.tensors(name)
        flat_a, flat_b = _leaves(a), _leaves(b)
        assert flat_a.keys() == flat_b.keys()
        for k in flat_a:
            assert np.array_equal(np.asarray(flat_a[k]), np.asarray(flat_b[k])), (name, k)


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        return {k2: v2 for k, v in tree.items() for k2, v2 in _leaves(v, f"{prefix}{k}/").items()}
    return {prefix: tree}


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
