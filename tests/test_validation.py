"""Validate before work: every case the real ``rlcli`` process must refuse exits 2 with one line on stderr,
before any episode is played or any file written; and what ``--help`` offers is what the registry holds."""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import run_cli

from rlcli import registry

TINY_AD = ["--set", "ad.context_len=20", "--set", "ad.embed_dim=16", "--set", "ad.num_layers=1",
           "--set", "ad.ff_dim=32", "--set", "ad.eval_episodes=2", "--set", "ad.batch_size=4"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A folder with a real PPO run (``ppo``), a real histories file (``data.h5``) and a real AD run (``ad``)."""
    root = tmp_path_factory.mktemp("runs")
    run_cli("train", "ppo", "--env", "cartpole", "--steps", "512", "--set", "run.eval_episodes=1", "--runs-dir",
            str(root), "--name", "ppo", "-q", check_rc=0)
    run_cli("collect", "darkroom", "--out", str(root / "data.h5"), "--tasks", "2", "--steps", "1000", "-q",
            "--set", "collect.num_test_tasks=1", "--set", "collect.histories_per_task=1",
            "--set", "collect.test_histories_per_task=0", check_rc=0)
    run_cli("distill", "--histories", str(root / "data.h5"), "--steps", "1", "--runs-dir", str(root), "--name", "ad",
            "-q", *TINY_AD, check_rc=0)
    shutil.copytree(root / "ppo", root / "nobest")  # a run whose evaluations never wrote best.h5
    (root / "nobest" / "checkpoints" / "best.h5").unlink()
    return root


def snapshot(*folders: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for f in folders for p in f.rglob("*")}


def refusal_cases(runs: Path, out: Path) -> list[tuple[list[str], str]]:
    """(command line, what stderr must say); ``out`` stands for the case's own output folder."""
    ppo, ad, data = str(runs / "ppo"), str(runs / "ad"), str(runs / "data.h5")
    dry = ["--runs-dir", str(out), "--dry-run"]
    return [
        (["train", "ppo", "--env", "cartpol", *dry], "did you mean 'cartpole'"),
        (["train", "ppo", "--env", "atari:NotAGame", *dry], "unknown Atari game 'NotAGame'"),
        (["train", "ppo", "--env", "atari", *dry], "names no game"),
        (["train", "ppo", "--policy", "vit", *dry], "unknown policy 'vit'"),
        (["train", "ppo", "--env", "cartpole", "--policy", "cnn", *dry], "needs image observations"),
        (["train", "dqn", "--env", "atari:Pong", "--policy", "vit-explorative", *dry], "dqn cannot use policy"),
        (["train", "rnd", "--env", "cartpole", "--technique", "gar", *dry], "not implemented for rnd"),
        (["train", "ppo", "--env", "atari:Pong", "--technique", "gar", *dry], "has no variations"),
        (["train", "ppo", "--env", "atari:Pong", "--set", "env.variation_level=0.5", *dry], "has no variations"),
        (["train", "ppo", "--env", "atari:Pong", "--set", "env.terminate_on_goal=false", *dry], "does not apply"),
        (["train", "ppox", "--env", "cartpole", *dry], "did you mean 'ppo'"),
        (["train", "ppo", "--policy", "vit-consistent-dropout", "--set", "policy.perceiver_heads=3", *dry],
         "policy.perceiver_heads=3 must divide policy.perceiver_dim=64"),
        (["train", "rnd", "--env", "atari:Pong", "--policy", "vit-explorative", "--set", "policy.vit_heads=3", *dry],
         "policy.vit_heads=3 must divide policy.vit_dim=128"),
        (["train", "ad", "--env", "darkroom", *dry], "rlcli distill"),
        (["train", "--study", "presets/generalization.toml", "--steps", "100"], "--steps has no effect with --study"),
        (["train", "ppo", "--resume", ppo, "--seeds", "0", "1"], "--seeds has no effect with --resume"),
        (["train", "ppo", "--env", "cartpole", "--runs-dir", str(runs), "--name", "ppo", "--dry-run"],
         "already exists"),
        (["train", "ppo", "--env", "cartpole", "--workers", "2", "--runs-dir", str(out)], "--study"),
        (["profile", "train", "ppo", "--env", "cartpole", "--dry-run"], "--dry-run has no effect under profile"),
        (["eval", ppo, "--checkpoint", "middle"], "--checkpoint must be last, best or a checkpoint file"),
        (["eval", str(runs / "nobest"), "--checkpoint", "best"], "has no best checkpoint"),
        (["eval", ppo, "--video", str(out / "ep.avi")], "must end in .gif or .mp4"),
        (["eval", ppo, "--attention", str(out / "att.png")], "--attention needs a policy with attention maps"),
        (["eval", ppo, "--attention", str(out / "att.txt")], "must end in .png"),
        (["eval", ppo, "--mc-dropout", "4"], "--mc-dropout needs a policy with dropout"),
        (["eval", ppo, "--shift", "0,1", "--video", str(out / "ep.gif")], "--video has no effect with --shift"),
        (["eval", ppo, "--tasks", "train"], "--tasks has no effect on a ppo run"),
        (["eval", ppo, "--set", "ppo.nope=1"], "unknown key 'ppo.nope'"),
        (["eval", ad, "--shift", "0,1"], "--shift has no effect on an Algorithm Distillation run"),
        (["eval", ad, "--video", str(out / "ep.gif")], "--video has no effect on an Algorithm Distillation run"),
        (["distill", "cartpole", "--histories", data, "--runs-dir", str(out)], "collected on 'darkroom', not 'cartpole'"),
        (["distill", "darkroom", "--runs-dir", str(out), "--set", "ad.histories=''"], "needs the learning histories"),
        (["collect", "darkroom", "--dry-run"], "--out"),
        (["collect", "darkroom", "--out", str(out / "n.h5"), "--set", "collect.noise_start=0.2"],
         "act only with collect.source"),
        (["collect", "cartpole", "--out", str(out / "h.h5")], "gives vector ones"),
    ]


def test_what_would_be_ignored_or_fail_later_exits_2_with_one_line_and_writes_nothing(runs, tmp_path):
    before = snapshot(runs)

    def check(index: int, args: list[str], message: str) -> None:
        # each case runs in its own empty folder, with its own empty folder for outputs
        cwd = tmp_path / f"case{index}"
        (cwd / "out").mkdir(parents=True)
        args = [a.replace("{out}", str(cwd / "out")) for a in args]
        proc = run_cli(*args, cwd=cwd)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert proc.stdout == "", (args, proc.stdout)
        assert [p.name for p in cwd.rglob("*")] == ["out"], f"{args} wrote {list(cwd.rglob('*'))}"

    with ThreadPoolExecutor(4) as pool:  # one process each; several at once keep the test short
        for future in [pool.submit(check, i, args, message)
                       for i, (args, message) in enumerate(refusal_cases(runs, Path("{out}")))]:
            future.result()
    assert snapshot(runs) == before, "a refused command changed the runs"


def test_checkpoint_accepts_last_best_and_a_file(runs):
    for which in ("best", str(runs / "ppo" / "checkpoints" / "last.h5")):
        proc = run_cli("eval", str(runs / "ppo"), "--checkpoint", which, "--episodes", "1", check_rc=0)
        assert "1 deterministic episodes" in proc.stdout


def test_distill_takes_the_env_of_its_histories(runs):
    proc = run_cli("distill", "--histories", str(runs / "data.h5"), "--dry-run", *TINY_AD, check_rc=0)
    assert 'id = "darkroom"' in proc.stdout


def test_help_offers_exactly_the_registered_algorithms_and_each_resolves(tmp_path):
    proc = run_cli("train", "--help", env={"COLUMNS": "200"}, check_rc=0)
    offered = re.search(r"Algorithm: ([\w, -]+)\.", proc.stdout).group(1).split(", ")
    assert offered == [s.name for s in registry.algorithms("train")]
    for algo in offered:
        run_cli("train", algo, "--env", "cartpole", "--dry-run", "--runs-dir", str(tmp_path), check_rc=0)
    envs = re.search(r"Environment: ([\w:<>, -]+)\.", proc.stdout).group(1)
    assert all(spec.name in envs for spec in registry.environments())
    assert list(tmp_path.iterdir()) == []


def test_every_subcommand_help_has_an_example_and_flags_show_no_type():
    from rlcli.cli.main import SUBCOMMAND_MODULES

    assert "Example: rlcli train" in run_cli("--help", env={"COLUMNS": "120"}, check_rc=0).stdout
    for command in SUBCOMMAND_MODULES:
        proc = run_cli(command, "--help", env={"COLUMNS": "120"}, check_rc=0)
        assert f"Example: rlcli {command}" in proc.stdout, proc.stdout
        assert "<bool>" not in proc.stdout
    assert run_cli("--version", check_rc=0).stdout.strip().startswith("rlcli 0.")


def test_config_options_list_the_keys_that_apply_with_the_command_defaults():
    for args in (["collect", "--config-options"], ["train", "dqn", "--env", "atari:Pong", "--config-options"]):
        proc = run_cli(*args, env={"COLUMNS": "80"}, check_rc=0)  # collect: no --out needed to list options
        rows = [line.split("│")[1:4] for line in proc.stdout.splitlines() if re.match(r"^│ [a-z0-9_]+\.\w+ ", line)]
        keys = {row[0].strip(): row[2].strip() for row in rows}  # key -> default
        env_keys = {k for k in keys if k.startswith("env.")}
        if args[0] == "collect":
            assert "collect.test_histories_per_task" in keys
            assert env_keys == {"env.id", "env.max_episode_steps", "env.terminate_on_goal"}
            assert keys["env.id"] == "'darkroom'" and keys["env.max_episode_steps"] == "20"  # darkroom-ad's
        else:
            assert env_keys == {"env.id", "env.num_envs", "env.max_episode_steps", "env.backend"}
            assert keys["env.id"] == "'atari:Pong'" and "dqn.learning_rate" in keys
