"""rlcli: train, compare and distill reinforcement-learning agents from the terminal or a notebook.

The library API (what every CLI subcommand wraps)::

    import rlcli
    cfg = rlcli.resolve_config("ppo", env="cartpole", overrides=["ppo.learning_rate=1e-3"])
    result = rlcli.train(cfg)                 # -> TrainResult(run_dir, steps, wall_time, final_eval_return)
    rlcli.evaluate("runs/<name>", episodes=10)
    rlcli.report(["runs/"], heatmap=True)     # tables, figures and report.md
    rlcli.run_study("presets/generalization.toml", workers=2)
"""

__version__ = "0.1.0"

_LAZY = {
    "train": "rlcli.engine.train:train",
    "resolve_config": "rlcli.config.presets:resolve_config",
    "evaluate": "rlcli.evaluation.evaluate:evaluate",
    "mc_dropout_evaluate": "rlcli.evaluation.mc_dropout:mc_dropout_evaluate",
    "report": "rlcli.report.runs:report",
    "run_study": "rlcli.study.runner:run_study",
    "profile": "rlcli.engine.profile:profile",
    "collect": "rlcli.ad.collect:collect",
    "distill": "rlcli.ad.distill:distill",
}


def __getattr__(name: str):
    # heavy modules (torch, gymnasium) load on first use, so `rlcli --help` stays fast
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name].split(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'rlcli' has no attribute '{name}'")
