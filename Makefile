# Quickstart: `make demo` and `make test` on a fresh machine (they create .venv themselves).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint bench clean mutate dist

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check taskfiles tests bench examples tools
	$(BIN)/ruff format --check taskfiles tests bench examples tools
	$(BIN)/mypy
	$(BIN)/mypy --strict tools

test: lint
	$(BIN)/pytest -n 2 -q

# The sdist and the wheel (built from the sdist) in dist/, checked as PyPI would check them.
# tests/test_wheel.py builds them from a copy of the repository and installs the wheel.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist
	$(BIN)/twine check --strict dist/*

# `make bench BENCH_FLAGS=--quick` for a smoke run; LIST_FLAGS= to leave Backlog.md out.
# The benches remove PYTHONDONTWRITEBYTECODE for what they time; unset here too, the
# in-process cases (the graph, the cycle in process) import with bytecode kept as well.
BENCH_FLAGS ?=
LIST_FLAGS ?= --backlog
BENCH_PY := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python
bench: $(STAMP)
	$(BENCH_PY) bench/startup.py $(BENCH_FLAGS)
	$(BENCH_PY) bench/bench_list.py $(LIST_FLAGS) $(BENCH_FLAGS)
	$(BENCH_PY) bench/bench_registry.py $(BENCH_FLAGS)
	$(BENCH_PY) bench/bench_status.py $(BENCH_FLAGS)
	$(BENCH_PY) bench/bench_heartbeat.py $(BENCH_FLAGS)
	$(BENCH_PY) bench/bench_serve.py $(BENCH_FLAGS)
	$(BENCH_PY) bench/bench_graph.py $(BENCH_FLAGS)

# Mutation testing of the core modules with mutmut (tools/mutate.py; not part of `make test`:
# minutes to hours a module). One module: `make mutate MODULE=taskfiles/state.py`; each runs in
# .mutate/<module>/ and writes its score and surviving mutants to .mutate/<module>/report.md.
# MUTATE_FLAGS: e.g. --mutants 'taskfiles.state.x__age*' (some mutants), --max-children 2.
MODULE ?=
MUTATE_FLAGS ?=
mutate: $(STAMP)
	$(BIN)/python tools/mutate.py $(MODULE) $(MUTATE_FLAGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build
