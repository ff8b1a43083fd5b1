"""The unlearning method: the EraseDiff update (`update.py`), its losses, the loop, the baselines it is compared
with, the retain probe, checkpoints and data-parallel launch. `docs/method.md` explains it.
"""
