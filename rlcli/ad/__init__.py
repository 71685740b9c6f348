"""Algorithm Distillation end to end: the source A2C (``source_a2c``), batched collection of learning histories
(``collect``), the distillation learner (``distill``), in-context evaluation (``in_context``, ``evaluate``).
The histories file format lives in :mod:`rlcli.storage.histories`."""
