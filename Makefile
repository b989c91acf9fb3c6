# The two commands of the README: `make run` and `make test`. Everything else is a helper.
#
# Every environment comes from uv.lock (hashes of every package, runtime and test tools alike):
# `make run` installs the runtime set only, `make test` adds the test group, and both refuse a
# lock that is stale against pyproject.toml (`uv sync --locked`). `make upgrade` is the one
# place newer releases come in: it re-resolves the lock and runs the whole gate against it.
PYTHON     ?= python3
VENV       := .venv
BIN        := $(VENV)/bin
# uv itself lives in a venv of its own, pinned, so the project's .venv holds the project only.
UV_VERSION := 0.13.10
UV_VENV    := .uv
UV         := $(UV_VENV)/bin/uv
# --compile-bytecode: every package's .pyc is written at install. Where PYTHONDONTWRITEBYTECODE
# is set (containers often set it) Python never writes them, and each process compiled
# SQLAlchemy, pydantic, httpx and the rest afresh: ~2.5 s of CPU for every `syncd` started, and
# the suite starts hundreds. Python reads .pyc files that exist whatever that variable says.
UV_SYNC    := $(UV) sync --locked --compile-bytecode --python $(PYTHON)
# Never a downloaded interpreter: the machine's Python 3.11+ is the one the README asks for.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint contracts typecheck pytest bench upgrade schema system-packages clean

$(UV):
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# One stamp per set: whichever ran last is what .venv holds (uv sync removes what the set lacks).
$(VENV)/.runtime: uv.lock pyproject.toml | $(UV)
	$(UV_SYNC) --no-default-groups
	rm -f $(VENV)/.test
	touch $@

$(VENV)/.test: uv.lock pyproject.toml | $(UV)
	$(UV_SYNC)
	rm -f $(VENV)/.runtime
	touch $@

## run: the daemon on config.example.toml with the embedded emulator, watching example-data/
run: $(VENV)/.runtime
	$(BIN)/syncd -c config.example.toml run

## test: what the suite needs (PostgreSQL server binaries, Chromium), then format check, lint,
## strict typing, the layer contract and the whole test suite
test: system-packages $(VENV)/.test lint contracts typecheck pytest

system-packages:
	bash .ci/system-packages

lint: $(VENV)/.test
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

contracts: $(VENV)/.test
	$(BIN)/lint-imports

typecheck: $(VENV)/.test
	$(BIN)/mypy

# The project's own .pyc too (only what changed is compiled again): the suite starts `syncd`
# hundreds of times, and without them (PYTHONDONTWRITEBYTECODE) each one compiles the package.
pytest: $(VENV)/.test
	$(BIN)/python -m compileall -q syncd tests
	$(BIN)/pytest

bench: $(VENV)/.test
	$(BIN)/python -m benchmarks

## upgrade: re-resolve uv.lock to the newest releases pyproject.toml allows, then the whole gate
upgrade: | $(UV)
	$(UV) lock --upgrade --python $(PYTHON)
	$(MAKE) test

## schema: after adding a migration, record the schema new SQLite files are created with
schema: $(VENV)/.test
	$(BIN)/python -c "from syncd.store.migrate import record_fresh_schema as r; print(r())"

clean:
	rm -rf $(VENV) $(UV_VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
