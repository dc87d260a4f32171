"""One training run, or a vmapped group of them: the jitted functions built once (``runner``),
the host loop (``loop``) with its periodic actions (``actions``) and its recovery from rejected
updates (``recovery``), checkpoints (``checkpointing``), what a run directory holds and how it
is written (``rundir``, ``writers``, ``reporting``, ``plotting``), evaluating and sampling a
finished run (``evaluate``, ``from_checkpoint``), and ``train.train_and_evaluate`` with the
train command.
"""
