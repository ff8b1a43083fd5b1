# The two entry points README.md opens with. Both create .venv when it is missing.
PY := .venv/bin/python
export ZENML_ANALYTICS_OPT_IN=false ZENML_AUTO_OPEN_DASHBOARD=false MLFLOW_DISABLE_TELEMETRY=true \
       GX_ANALYTICS_ENABLED=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DO_NOT_TRACK=1

.PHONY: setup run run-concept ui test test-fast lint bench bench-tradeoff bench-tradeoff-quality bench-tradeoff-quality-long bench-gates bench-robustness lock deploy-check

# Exactly the versions in requirements.lock (hashes checked, nothing resolved), then the project itself: what CI tests
# is what the image (deploy/Dockerfile) installs.
.venv/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

setup: .venv/.installed

# The erasure pipeline on the embedded default: ZenML local orchestrator, MLflow (SQLite) and registry in .erasediff/
run: setup
	$(PY) run.py configs/request_digits_forget_3.yaml

# Concept erasure on the embedded tiny text-to-image model: forget "seven" (same pipeline, same stores)
run-concept: setup
	$(PY) run.py configs/request_text_digits_forget_seven.yaml

# The MLflow UI on the same store: http://127.0.0.1:5000
ui: setup
	.venv/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.erasediff/mlflow.db --host 127.0.0.1 --port 5000

test: setup
	$(PY) -m pytest -q

# The unit tests only (about a minute): the edit-test loop. `make test` stays the whole suite.
test-fast: setup
	$(PY) -m pytest -q -m "not slow and not integration"

# Import order, pyflakes and style (pyproject.toml [tool.ruff]); CI runs it before the tests.
lint: setup
	.venv/bin/ruff check .

bench: setup
	$(PY) benchmarks/step_cost.py
	$(PY) benchmarks/pipeline_overhead.py
	$(PY) benchmarks/sd_update_cost.py $(if $(shell nvidia-smi -L 2>/dev/null),,--smoke)
	$(PY) benchmarks/storage_cost.py --publish
	$(PY) benchmarks/request_bytes.py --publish
	$(PY) benchmarks/sd_memory.py --publish $(if $(shell nvidia-smi -L 2>/dev/null),--device cuda,)
	$(PY) benchmarks/sd_scale.py --publish $(if $(shell nvidia-smi -L 2>/dev/null),--device cuda,)

# EraseDiff against fine-tuning, NegGrad+, SalUn and ESD, 3 seeds, two tasks (5 to 17 minutes on 2 cores, by machine); writes docs/results/'s results
bench-tradeoff: setup
	$(PY) benchmarks/tradeoff.py --publish

# Two benchmark halves run side by side (pids $a and $b) must both succeed before their runs files are merged: a bare `wait`
# returns 0 whatever they did, and the previous results left in their folders (removed first) would be merged as new
WAIT_BOTH = wait $$a; ra=$$?; wait $$b && [ $$ra -eq 0 ]

# Time to forget at equal quality (the requests' FID/KID gates), 5 methods x 3 learning rates x 3 seeds; the two tasks side by
# side on one thread each (about 70 minutes on 2 cores measured before erasediff-eta2-anchor3 joined; expect more); writes docs/results/
QUALITY_FLAGS = --until-equal-quality --lr-scales 0.5 1 2 --methods erasediff erasediff-eta2-anchor3 neggrad+ salun esd --threads 1
bench-tradeoff-quality: setup
	rm -rf .cache/tradeoff-digits .cache/tradeoff-text
	$(PY) benchmarks/tradeoff.py $(QUALITY_FLAGS) --tasks digits --out .cache/tradeoff-digits & a=$$!; \
	$(PY) benchmarks/tradeoff.py $(QUALITY_FLAGS) --tasks text --out .cache/tradeoff-text & b=$$!; $(WAIT_BOTH)
	$(PY) benchmarks/tradeoff.py --until-equal-quality --merge .cache/tradeoff-digits/tradeoff-quality_runs.json \
	  .cache/tradeoff-text/tradeoff-quality_runs.json --publish

# The digits half again with three times the request's budget (300 updates), so that the baselines' time to equal quality is
# measured, not bounded by the budget: the timed pair (EraseDiff, SalUn) beside NegGrad+ and ESD, one thread each (56 minutes on 2 cores)
LONG_FLAGS = --until-equal-quality --tasks digits --lr-scales 0.5 1 2 --steps 300 --threads 1
bench-tradeoff-quality-long: setup
	rm -rf .cache/tradeoff-long-timed .cache/tradeoff-long-rest
	$(PY) benchmarks/tradeoff.py $(LONG_FLAGS) --methods erasediff salun --out .cache/tradeoff-long-timed & a=$$!; \
	$(PY) benchmarks/tradeoff.py $(LONG_FLAGS) --methods neggrad+ esd --out .cache/tradeoff-long-rest & b=$$!; $(WAIT_BOTH)
	$(PY) benchmarks/tradeoff.py --until-equal-quality --section tradeoff-quality-digits-300 --merge \
	  .cache/tradeoff-long-timed/tradeoff-quality_runs.json .cache/tradeoff-long-rest/tradeoff-quality_runs.json --publish

# Do the shipped requests' gates reject known-bad models and pass reruns? (about 15 minutes on 2 cores; writes docs/results/)
bench-gates: setup
	$(PY) benchmarks/gate_power.py --publish

# Recovery attacks on the original, the retrained gold standard and every method's candidates, 3 seeds, digits and
# the tiny text model (about 35 and 45 minutes on 2 cores; writes docs/results/)
bench-robustness: setup
	$(PY) benchmarks/robustness.py --all-methods --publish
	$(PY) benchmarks/robustness.py --task text --all-methods --publish

# Re-pin requirements.lock (the project and every extra, with hashes, for CPython 3.11 on Linux x86_64) with pip-tools:
# existing pins are kept unless pyproject.toml excludes them; `make lock LOCK_ARGS="--upgrade-package NAME"` moves one,
# `make lock LOCK_ARGS=--upgrade` all. pip-tools lives in its own environment, never in the one it pins.
LOCK_TOOLS := .cache/lock-tools/bin
lock:
	test -x $(LOCK_TOOLS)/pip-compile || (python3 -m venv .cache/lock-tools && $(LOCK_TOOLS)/pip install -q 'pip-tools==7.7.0')
	$(LOCK_TOOLS)/pip-compile --quiet --generate-hashes --all-extras --strip-extras --allow-unsafe --no-emit-index-url \
	  --no-emit-find-links $(LOCK_ARGS) --output-file requirements.lock pyproject.toml

# Validate every Kubernetes manifest under deploy/ offline (schemas, pinned images, non-root, limits, no literal secrets)
deploy-check: setup
	$(PY) deploy/check_manifests.py
