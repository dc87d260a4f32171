"""One training run, or a vmapped group of them: the jitted functions built once (``runner``),
the host loop and its periodic actions (``loop``), checkpoints (``checkpointing``), what a run
directory holds and how it is written (``rundir``, ``writers``, ``reporting``, ``plotting``),
evaluating and sampling a finished run (``from_checkpoint``), and ``train.train_and_evaluate``.
"""
