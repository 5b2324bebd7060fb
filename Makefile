# Developer / CI entry points. The README's two commands:
#   make serve   [ARGS="..."]         install the package with its test and fast (uvloop)
#                                     extras into .venv, then run the emulator
#   make test    [PYTEST_ARGS="..."]  lint, type check, then the test suite (incl. interop clients
#                                     and the browser tests in Chromium)

.PHONY: serve test

.DEFAULT_GOAL := test

ARGS ?=
PYTEST_ARGS ?=

serve:
	bash scripts/bootstrap.sh
	exec .venv/bin/pager-emulator serve $(ARGS)

test:
	bash scripts/bootstrap.sh --test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/python -m pytest $(PYTEST_ARGS)
