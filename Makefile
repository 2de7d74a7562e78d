# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs the project (editable, with dev tools) when missing or stale.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test fidelity lint fmt bench plugin-validate wheel-check clean

$(STAMP): pyproject.toml server/dmig/native/fastcopy.c
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@$(PY) -m dmig.native
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dmig demo $(DEMO_ARGS)

# One pytest-xdist worker per core; TEST_WORKERS=0 runs in this process. Tests of one xdist_group share a worker.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The fidelity suite (tests/test_fidelity_*.py) with drawn rows: `make test` runs each (pair x type family) case
# once on its edge rows; this runs DMIG_FIDELITY_EXAMPLES examples of up to DMIG_FIDELITY_ROWS random rows each.
DMIG_FIDELITY_EXAMPLES ?= 25
DMIG_FIDELITY_ROWS ?= 20
fidelity: $(STAMP)
	DMIG_FIDELITY_EXAMPLES=$(DMIG_FIDELITY_EXAMPLES) DMIG_FIDELITY_ROWS=$(DMIG_FIDELITY_ROWS) \
		$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup tests/test_fidelity_copy.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check server tests bench

fmt: $(STAMP)
	$(VENV)/bin/ruff format server tests bench

bench: $(STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

# Needs Node.js; fetches the Claude Code CLI from the npm registry.
plugin-validate:
	npx -y @anthropic-ai/claude-code plugin validate --strict .claude-plugin/plugin.json
	npx -y @anthropic-ai/claude-code plugin validate --strict .claude-plugin/marketplace.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache dist build
