"""``rlcli.load``: the agent of a short-trained PPO, DQN, RND and AD run acts exactly as ``rlcli eval`` does;
the public API is listed and ``import rlcli`` stays light."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import rlcli
from rlcli.agent import Agent, InContextAgent
from rlcli.engine.episodes import run_episodes
from rlcli.evaluation.evaluate import load_for_inference

torch.set_num_threads(1)  # small nets; the machine is shared


def test_public_api_is_listed_and_import_is_light():
    names = {"train", "resolve_config", "evaluate", "load", "collect", "distill", "report", "run_study", "profile"}
    assert names <= set(rlcli.__all__) and names <= set(dir(rlcli))
    code = ("import sys, rlcli; heavy = [m for m in ('torch', 'gymnasium', 'h5py', 'matplotlib') if m in sys.modules]; "
            "assert not heavy, heavy; print(sorted(rlcli.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert all(callable(getattr(rlcli, n)) for n in names)
    assert callable(rlcli.report)  # the function, not the rlcli.report package its import loads
    with pytest.raises(AttributeError, match="no attribute 'lod'"):
        rlcli.lod  # noqa: B018


def _observations(agent: Agent, n: int = 64) -> np.ndarray:
    env = agent.env(num_envs=n, seed=123)
    try:
        obs, _ = env.reset(seed=123)
        for _ in range(5):  # a few random steps: states the policy meets, not only starts
            obs, *_ = env.step(env.action_space.sample())
        return obs
    finally:
        env.close()


def _check_agent_matches_eval(run_dir, algo: str) -> None:
    with rlcli.load(run_dir) as agent:
        assert isinstance(agent, Agent) and agent.algo == algo and agent.step > 0
        assert agent.device == torch.device("cpu")  # run.device auto, no GPU here
        obs = _observations(agent)
        reference, _, _, _ = load_for_inference(run_dir)  # what `rlcli eval` builds
        try:
            expected = reference.act(obs, True)
        finally:
            reference.close()
        actions = agent.act(obs)
        assert isinstance(actions, np.ndarray) and actions.shape == (len(obs),)
        np.testing.assert_array_equal(actions, expected)
        assert agent.act(obs[0]) == expected[0]  # one observation without a batch axis -> one action
        # whole episodes: the agent's returns are those of rlcli.evaluate with the same seed
        result = rlcli.evaluate(run_dir, episodes=3, seed=7)
        returns, lengths = run_episodes(agent.act, agent.config.env, 3, seed=7)
        np.testing.assert_array_equal(returns, result.returns)
        np.testing.assert_array_equal(lengths, result.lengths)


def test_load_ppo(small_ppo):
    result = rlcli.train(small_ppo(steps=1024))
    _check_agent_matches_eval(result.run_dir, "ppo")


def test_load_dqn_with_observation_normalisation(tmp_path):
    cfg = rlcli.resolve_config("dqn", env="cartpole", overrides=[
        "run.total_steps=1024", f"run.runs_dir={tmp_path}", "run.eval_episodes=2", "dqn.learning_starts=256",
        "dqn.learning_rate=1e-3"])
    assert cfg.dqn.normalize_obs  # the agent must apply the run's running mean and std
    result = rlcli.train(cfg)
    agent = rlcli.load(result.run_dir)
    rms = agent._algorithm.obs_rms
    assert rms is not None and float(rms.count) > 1  # loaded statistics, not a fresh normaliser
    agent.close()
    _check_agent_matches_eval(result.run_dir, "dqn")


def test_load_rnd(tmp_path):
    cfg = rlcli.resolve_config("rnd", env="cartpole", overrides=[
        "run.total_steps=512", f"run.runs_dir={tmp_path}", "run.eval_episodes=2", "rnd.warmup_steps=32"])
    result = rlcli.train(cfg)
    _check_agent_matches_eval(result.run_dir, "rnd")


def test_load_refuses_what_holds_no_checkpoint(tmp_path):
    from rlcli.config.fields import ConfigError

    with pytest.raises(ConfigError, match="neither a run folder nor a checkpoint"):
        rlcli.load(tmp_path / "missing")


@pytest.fixture(scope="module")
def ad_run(tmp_path_factory):
    """A tiny AD run: 4 training tasks' A2C histories, 4 gradient steps of a 1-layer model."""
    tmp = tmp_path_factory.mktemp("ad")
    over = ["collect.num_test_tasks=3", "collect.histories_per_task=1", "collect.max_train_tasks=4",
            "collect.steps_per_agent=1000", "ad.context_len=12", "ad.embed_dim=16", "ad.num_layers=2",
            "ad.ff_dim=32", "ad.batch_size=4", "ad.eval_episodes=2", "ad.next_state=true",
            f"run.runs_dir={tmp}", "run.name=ad", "run.total_steps=4"]
    cfg = rlcli.resolve_config("ad", env="darkroom", preset="darkroom-ad", overrides=over)
    rlcli.collect(cfg, tmp / "data.h5")
    return rlcli.distill(cfg, histories=str(tmp / "data.h5")).run_dir


def test_load_ad_acts_in_context_as_the_evaluation_does(ad_run):
    from rlcli.ad.in_context import run_in_context

    agent = rlcli.load(ad_run, seed=5)
    assert isinstance(agent, InContextAgent) and agent.step == 4
    tasks = agent.tasks["test"]
    episodes = 3
    env = agent.env()
    obs, _ = env.reset()
    returns = np.zeros((len(tasks), episodes))
    finished = np.zeros(len(tasks), dtype=int)
    episode_return = np.zeros(len(tasks))
    while (finished < episodes).any():
        result = env.step(agent.act(obs))
        agent.observe(*result)
        obs, reward, terminated, truncated, _ = result
        episode_return += reward
        for row in np.flatnonzero(terminated | truncated):
            if finished[row] < episodes:
                returns[row, finished[row]] = episode_return[row]
            finished[row] += 1
            episode_return[row] = 0
    expected = run_in_context(agent.model, tasks, episodes, agent.env_params, seed=5)
    np.testing.assert_array_equal(returns, expected.returns)
    # reset forgets the context and restarts the sampling: the same first actions again
    agent.reset()
    first = agent.act(env.reset()[0])
    agent.reset()
    np.testing.assert_array_equal(agent.act(env.reset()[0]), first)
    with pytest.raises(RuntimeError, match="observe"):
        agent.act(obs)  # act twice without telling the agent what the first action led to
    agent.reset()
    single = agent.act(40)  # one room, no batch axis: one int
    assert isinstance(single, int) and 0 <= single < 5
