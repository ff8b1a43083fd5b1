# The two entry points README.md opens with. Both create .venv when it is missing.
PY := .venv/bin/python
export ZENML_ANALYTICS_OPT_IN=false ZENML_AUTO_OPEN_DASHBOARD=false MLFLOW_DISABLE_TELEMETRY=true \
       GX_ANALYTICS_ENABLED=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DO_NOT_TRACK=1

.PHONY: setup run test bench

.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: .venv/.installed

run: setup
	.venv/bin/erasediff unlearn configs/digits_forget_3.yaml --output-dir runs/digits-forget-3-$$(date +%Y%m%d-%H%M%S)

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/step_cost.py
