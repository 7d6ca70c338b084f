# Two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: run test install lint bench bench-pg clean

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python bin/devserver.py

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# Benchmarks (bench/README.md): extra tools pinned in bench/requirements.txt; BENCH_ARGS passes
# options through, e.g. `make bench BENCH_ARGS="--scale small"` or `BENCH_ARGS="--only report"`.
# bench-pg's HTTP benchmark (`--only api`) drives wrk, installed with apt-get when run as root,
# and a Redis cache at $BENCH_CACHE_URL (default redis://127.0.0.1:6379/3).
$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --database sqlite $(BENCH_ARGS)

bench-pg: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --database $${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/usage_portal_bench} $(BENCH_ARGS)

clean:
	rm -rf $(VENV) test-artifacts
	find var -mindepth 1 -not -name .gitignore -exec rm -rf {} +
