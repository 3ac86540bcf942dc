# The two commands a new user needs: `make run` and `make test`. Everything else is set up by them.
# Resolved when a recipe runs (after the uv target may have installed it).
UV = $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
export UV_LINK_MODE ?= copy
# Installed packages compiled to bytecode once, as the Dockerfile does: a process that starts (the CLI, a test's
# server, the import's revaluation process) does not compile its imports again where PYTHONDONTWRITEBYTECODE is set.
export UV_COMPILE_BYTECODE ?= 1

.PHONY: run test uv lint openapi bench

uv:
	@command -v uv >/dev/null 2>&1 || test -x "$(UV)" || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

run: uv  ## Serve on http://127.0.0.1:8000 with SQLite and a demo tenant; prints an API key.
	$(UV) run --frozen coverwatch serve --demo

test: uv  ## The whole suite, on SQLite and PostgreSQL (COVERWATCH_TEST_POSTGRES_URL).
	$(UV) run --frozen pytest -n 2

lint: uv  ## ruff everywhere, mypy on app/ (settings in pyproject.toml).
	$(UV) run --frozen ruff check app tests migrations bench
	$(UV) run --frozen mypy

openapi: uv  ## Regenerate openapi/openapi.json from the code.
	$(UV) run --frozen coverwatch openapi

bench: uv
	$(UV) run --frozen python -m bench.run
