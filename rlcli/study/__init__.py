"""The study runner: ``rlcli train --study presets/generalization.toml [--workers N]``.

:mod:`rlcli.study.spec` reads a study file into a plan of runs (one resolved Config each),
:mod:`rlcli.study.runner` runs the plan N at a time, each run in its own process
(:mod:`rlcli.study.worker`: train, then evaluate under shift), skipping finished runs and resuming
interrupted ones, and keeps the best checkpoint per algorithm and environment.
"""
