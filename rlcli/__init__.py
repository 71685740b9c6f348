"""rlcli: train, compare and distill reinforcement-learning agents from the terminal or a notebook.

The library API (what every CLI subcommand wraps)::

    import rlcli
    cfg = rlcli.resolve_config("ppo", env="cartpole", overrides=["ppo.learning_rate=1e-3"])
    result = rlcli.train(cfg)                 # -> TrainResult(run_dir, steps, wall_time, final_eval_return)
    agent = rlcli.load(result.run_dir)        # act(obs) -> actions, as `rlcli eval` plays them
    rlcli.evaluate("runs/<name>", episodes=10)
    rlcli.report(["runs/"], heatmap=True)     # tables, figures and report.md
    rlcli.run_study("presets/generalization.toml", workers=2)

``help(rlcli.load)`` and the others say more; every name in ``rlcli.__all__`` is imported on first use.
"""

__version__ = "0.1.0"

# name -> "module:attribute"; heavy modules (torch, gymnasium) load on first use, so `rlcli --help` and
# `import rlcli` stay fast
_LAZY = {
    "resolve_config": "rlcli.config.presets:resolve_config",
    "train": "rlcli.engine.train:train",
    "load": "rlcli.agent:load",
    "evaluate": "rlcli.evaluation.evaluate:evaluate",
    "mc_dropout_evaluate": "rlcli.evaluation.mc_dropout:mc_dropout_evaluate",
    "report": "rlcli.report.runs:report",
    "run_study": "rlcli.study.runner:run_study",
    "profile": "rlcli.engine.profile:profile",
    "collect": "rlcli.ad.collect:collect",
    "distill": "rlcli.ad.distill:distill",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name].split(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'rlcli' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
