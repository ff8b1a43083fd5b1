"""ZenML steps of the erasure pipeline, one per file, each a few lines over `erasediff/`.

`tracking.py`, `registry.py` and `diffusers_pyfunc.py` are not steps: they hold the MLflow calls the
steps share (metric series and artifacts, the registry look-ups, the pyfunc the registry serves).
"""
