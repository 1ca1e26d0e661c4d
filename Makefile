VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALL_STAMP := $(VENV)/.install.stamp

.DEFAULT_GOAL := help
.PHONY: help install run test functional lint format bench clean

help:  ## List the targets with a line each
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

install: $(INSTALL_STAMP)  ## Create .venv and install the plugin with its test tools
$(INSTALL_STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $(INSTALL_STAMP)

run: install  ## Start Kinto with the plugin on localhost:8888; emails land in ./mail/
	$(VENV)/bin/kinto start --ini config/kinto.ini

# Three workers (tests wait on servers as much as they compute), each with its own SMTP
# server, ports and databases; a file's tests stay together.
PYTEST := $(PYTHON) -m pytest -n 3 --dist loadfile

test: install  ## Run every test: unit, web, PostgreSQL and functional
	$(PYTEST)

functional: install  ## Run the functional tests only (real kinto processes)
	$(PYTEST) -m functional

lint: install  ## Check style with ruff, types with mypy, the layers with import-linter
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo

format: install  ## Reformat the code with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install  ## Compare latency with and without the plugin (bench/)
	$(PYTHON) bench/run.py

clean:  ## Remove the virtualenv, caches and debug emails
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .hypothesis .import_linter_cache mail
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
