# `make test` sets up everything the tests need from a fresh clone, then runs them: lint, types, and the
# suite on the default python3, then the suite again on Python 3.12 (the Lambda runtime) when this
# machine has one (pyenv's or on PATH); without it the run says so and tests on python3 alone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VENV312 := .venv312
# pyenv's python3.12 shim answers only when PYENV_VERSION names a 3.12, so look for the binary itself.
PY312 ?= $(shell v=$$(pyenv versions --bare 2>/dev/null | grep '^3\.12' | tail -n 1); \
	if [ -n "$$v" ] && [ -x "$$(pyenv root)/versions/$$v/bin/python3.12" ]; then echo "$$(pyenv root)/versions/$$v/bin/python3.12"; \
	else command -v python3.12 2>/dev/null; fi)

NODE_STAMP := node_modules/.installed
PY_DIRS := poller scaler producer deploy ops sandbox testing app tests bench

.PHONY: demo demo-deployed sandbox-deployed test lint unit test-py312 importtime bench package clean

# The whole system on the embedded stand-in for AWS: see docs/operations.md. Writes demo-out/.
demo: $(STAMP)
	$(BIN)/sqs-loops demo $(DEMO_ARGS)

# The same with a real `serverless deploy --stage local` into the sandbox, the functions run from the
# deployed package (docs/deploy.md#deploying-into-the-sandbox). `sandbox-deployed` runs until Ctrl-C.
demo-deployed: $(STAMP) $(NODE_STAMP)
	$(BIN)/sqs-loops demo --deployed $(DEMO_ARGS)

sandbox-deployed: $(STAMP) $(NODE_STAMP)
	$(BIN)/sqs-loops sandbox --deployed $(SANDBOX_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

test: lint unit test-py312

lint: $(STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy

# The deployment tests (tests/test_deploy.py) run `serverless package`: they need node_modules.
# The suite runs on two pytest-xdist workers per core (TEST_WORKERS=N for N): its tests mostly wait (on
# moto, on timed sandbox runs), so one worker a core left the cores two-thirds idle (2 min 50 s of CPU in
# 4 min 17 s on 2 cores; four workers took 2 min 49 s).
TEST_WORKERS ?= $(shell echo $$(( 2 * $$(nproc 2>/dev/null || echo 1) )))
unit: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS)

# The 3.12 pass leaves out what tests code that never runs in Lambda (packaging, the stack's rendering and
# roles, the CLI, the sandbox's long runs, moto itself): python3 ran them above, and the loop, the
# control plane and the producer they drive are tested on 3.12 by the rest.
NOT_ON_LAMBDA := test_deploy.py test_sandbox.py test_deployed.py test_shared_sandbox.py test_resting.py \
	test_architecture.py test_packaging.py test_render.py test_least_privilege.py test_cost.py \
	test_cli_views.py test_operator.py test_runs_cli.py test_send_cli.py test_moto_sqs.py

test-py312:
	@if [ -z "$(PY312)" ]; then \
		echo "python3.12 not found: the suite ran on $$($(PYTHON) --version) only"; \
	else \
		set -e; [ -x $(VENV312)/bin/python ] || $(PY312) -m venv $(VENV312); \
		$(VENV312)/bin/pip install --quiet --upgrade pip; \
		$(VENV312)/bin/pip install --quiet -e '.[dev]'; \
		echo "suite on $$($(VENV312)/bin/python --version) (the Lambda runtime), less the tests of what never runs in Lambda:"; \
		$(VENV312)/bin/pytest -n $(TEST_WORKERS) $(addprefix --ignore=tests/,$(NOT_ON_LAMBDA)); \
	fi

# The loop function's cold start as Lambda sees it (docs/benchmarks.md, "Cold start"): `serverless package`,
# then the zip unpacked and imported read-only on Python 3.12 (.venv312, which `make test` makes), as
# shipped, without the config's JSON form and without bytecode; the import alone, and with the first claim
# (on a moto server). Then the import from this checkout's venv (bytecode cached), median of 5.
importtime: $(STAMP) $(NODE_STAMP)
	npx serverless package --package bench-out/package >/dev/null
	$(BIN)/python -m bench.footprint --package bench-out/package/sqs-loops.zip --json bench-out/cold-start.json \
		--python $(if $(wildcard $(VENV312)/bin/python),$(VENV312)/bin/python,$(BIN)/python)
	@for i in 1 2 3 4 5; do $(BIN)/python -c "import time; t=time.perf_counter(); import poller.handler; print((time.perf_counter()-t)*1000)"; done \
		| sort -n | sed -n 3p | xargs printf 'import poller.handler from the checkout: %.0f ms (median of 5)\n'

# Every benchmark of docs/benchmarks.md (a few minutes; `python -m bench --quick` for a short run), with
# import_ms on Python 3.12 when `make test` made .venv312. Writes bench-out/results.json and the chart.
bench: $(STAMP)
	$(BIN)/python -m bench --json bench-out/results.json --chart bench-out/benchmarks.png \
		$(if $(wildcard $(VENV312)/bin/python),--py312 $(VENV312)/bin/python) $(BENCH_ARGS)

# The deployment package of queues.yml (or $$SQS_LOOPS_CONFIG) into .serverless/, with its size.
package: $(STAMP) $(NODE_STAMP)
	npx serverless package $(if $(STAGE),--stage $(STAGE))
	@ls -l .serverless/*.zip | awk '{printf "deployment package: %s, %.2f MB zipped\n", $$9, $$5 / 1e6}'

clean:
	rm -rf $(VENV) $(VENV312) build *.egg-info node_modules .serverless
