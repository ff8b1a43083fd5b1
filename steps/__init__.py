"""ZenML steps of the erasure pipeline, one per file, each a few lines over `erasediff.request` (the library) and
`mlflow_adapters` (what talks to MLflow)."""
