# printcloud — `make demo` runs the main job, `make test` runs the tests.
# Every target creates .venv on first use and installs the package with its extras.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint bench serve clean venv
.DEFAULT_GOAL := demo

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/printcloud demo

serve: $(STAMP)
	$(VENV)/bin/printcloud serve

# Two workers (pytest-xdist), each with its own live stack and PostgreSQL database
# (TEST_WORKERS=3 was tried: on a 2-core machine the suite is CPU-bound now, and a third
# worker's stack only adds load). pytest's exit status, 5 ("no tests collected") included, becomes make's.
# Bytecode and pytest's rewritten test modules are cached even where the environment says
# PYTHONDONTWRITEBYTECODE: each worker and each process a test starts would compile them again.
TEST_WORKERS ?= 2
test: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -p xdist -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
