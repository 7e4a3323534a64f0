VENV ?= .venv
PY = $(VENV)/bin/python
RUN_VENV ?= .venv-run
PYTEST_ARGS ?=
DURATION ?= 120

.DEFAULT_GOAL := help
.PHONY: help install install-runtime lint typecheck test run format clean bench chaos

help:
	@echo "make install    create $(VENV) and install idemsync with the dev extra"
	@echo "make run        install the runtime only ($(RUN_VENV)), migrate var/idemsync.db and"
	@echo "               serve on 127.0.0.1:8000"
	@echo "make test       install, lint, typecheck, then pytest (PYTEST_ARGS=...)"
	@echo "make lint       ruff check and ruff format --check"
	@echo "make typecheck  mypy (the product's packages and bench/)"
	@echo "make format     ruff format and ruff check --fix"
	@echo "make bench      install, then every benchmark in one run (bench/run.py): ingest"
	@echo "               over HTTP with wrk vs the raw database ceiling, rebuild, audit on"
	@echo "               1M events; table + bench/results/latest.json (BENCH_ARGS=--duration 10"
	@echo "               --stored-events N ..., AUDIT_ARGS=--keep ...; needs wrk: apt-get install wrk)"
	@echo "make chaos      install, then the long chaos run on PostgreSQL and SQLite:"
	@echo "               DURATION seconds of traffic each (default 120; CHAOS_ARGS=--keep ...)"
	@echo "make clean      remove caches and build output (keeps var/)"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install-runtime: $(RUN_VENV)/.installed

$(RUN_VENV)/.installed: pyproject.toml constraints.txt
	test -x $(RUN_VENV)/bin/python || python3 -m venv $(RUN_VENV)
	$(RUN_VENV)/bin/python -m pip install -q -c constraints.txt -e .
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy domain infrastructure projections web idemsync bench

test: install lint typecheck
	$(VENV)/bin/pytest $(PYTEST_ARGS)

run: install-runtime
	mkdir -p var
	test -f var/demo.env || $(RUN_VENV)/bin/python -c 'import base64, secrets; print("IDEMSYNC_DEMO_SECRET=whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())' > var/demo.env
	set -a; . var/demo.env; set +a; $(RUN_VENV)/bin/idemsync db upgrade && $(RUN_VENV)/bin/idemsync demo-request --url http://127.0.0.1:8000 && exec $(RUN_VENV)/bin/idemsync serve --host 127.0.0.1 --port 8000

bench: install
	$(PY) -m bench.run $(BENCH_ARGS) --audit-args="$(AUDIT_ARGS)"

chaos: install
	$(PY) -m tests.chaos --duration $(DURATION) $(CHAOS_ARGS)

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
