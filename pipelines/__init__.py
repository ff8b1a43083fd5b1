"""ZenML pipelines and their runner: `python run.py REQUEST.yaml` (see run_request.py)."""
