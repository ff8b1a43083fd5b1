"""EraseDiff: erase a class or concept from a diffusion model while preserving the rest.

The library holds the algorithm, models, data and metrics; it imports neither ZenML nor MLflow,
so it runs the same inside a pipeline step, a notebook or `accelerate launch`.
"""

__version__ = "0.1.0"
