"""The MLflow side of the pipeline, shared by steps/ and pipelines/: registry look-ups, logging, promotion, and the
pyfunc code each registered model carries. Nothing in erasediff/ imports it."""
