"""Algorithm Distillation end to end: the source A2C (``source_a2c``), batched collection of learning histories
as a learner of the one training loop (``collect``), the training windows drawn from them (``windows``), the
distillation learner (``distill``), in-context evaluation (``in_context``) and ``rlcli eval`` of AD runs
(``evaluate``). The histories file format lives in :mod:`rlcli.storage.histories`.

Imports run one way: ``evaluate`` -> ``distill`` -> ``windows``, ``in_context``; ``collect`` -> ``source_a2c``;
all of them -> engine, nets, envs, storage, config (and ``evaluate`` -> evaluation's bootstrap and video writer).
"""
