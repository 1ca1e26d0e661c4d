VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALL_STAMP := $(VENV)/.install.stamp
# The tests run on the package as a deployment installs it: the wheel, in a virtualenv of
# its own (.venv stays the editable install for development, lint and docs).
TEST_VENV := .venv-test
DIST := dist
PORT ?= 8888

.DEFAULT_GOAL := help
.PHONY: help install run dist test functional lint format docs bench clean

help:  ## List the targets with a line each
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

install: $(INSTALL_STAMP)  ## Create .venv with the plugin (editable), test, lint and docs tools
$(INSTALL_STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test,docs]"
	touch $(INSTALL_STAMP)

run: install  ## Start Kinto with the plugin on localhost:8888 (PORT=8000 for another); emails in ./mail/
	$(VENV)/bin/kinto start --ini config/kinto.ini --port $(PORT)

# In an isolated environment with the setuptools of [build-system] (the virtualenvs keep one
# older than 81 for kinto-signer's pkg_resources).
dist: install  ## Build the sdist, then the wheel from it, into dist/
	rm -rf $(DIST) build
	$(PYTHON) -m build --outdir $(DIST) . > dist.log 2>&1 || { cat dist.log; exit 1; }

# Installed from the wheel, dependencies and test tools included; reinstalled on every run
# (its version doesn't change between two builds).
define install_wheel
	test -x $(TEST_VENV)/bin/python || python3 -m venv $(TEST_VENV)
	$(TEST_VENV)/bin/pip install --quiet --upgrade pip
	$(TEST_VENV)/bin/pip install --quiet "$$(ls $(DIST)/*.whl)[test,docs]"
	$(TEST_VENV)/bin/pip install --quiet --force-reinstall --no-deps $(DIST)/*.whl
	mkdir -p $(TEST_VENV)/tests-only
	ln -sfn $(CURDIR)/tests $(TEST_VENV)/tests-only/tests
endef

# Three workers (tests wait on servers as much as they compute), each with its own SMTP
# server, ports and databases; a file's tests stay together. The checkout's kinto_emailer is
# never imported: ``append`` puts the repository after site-packages, PYTHONSAFEPATH keeps
# the current directory off sys.path, and tests/conftest.py checks it. PYTHONPATH names a
# directory where only ``tests`` is, the checkout's: kinto-signer installs a ``tests`` package
# of its own in site-packages.
PYTEST := KINTO_EMAILER_TEST_INSTALLED=1 PYTHONSAFEPATH=1 PYTHONPATH=$(CURDIR)/$(TEST_VENV)/tests-only \
	KINTO_EMAILER_TEST_WHEEL="$$(ls $(DIST)/*.whl)" KINTO_EMAILER_TEST_SDIST="$$(ls $(DIST)/*.tar.gz)" \
	$(TEST_VENV)/bin/python -m pytest --import-mode=append -n 3 --dist loadfile

test: dist  ## Run every test (unit, web, PostgreSQL, functional) on the built wheel
	$(install_wheel)
	$(PYTEST)

functional: dist  ## Run the functional tests only (real kinto processes), on the built wheel
	$(install_wheel)
	$(PYTEST) -m functional

lint: install  ## Check style with ruff, types with mypy, the layers with import-linter
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo

format: install  ## Reformat the code with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: install  ## Build the documentation into docs/_build/html (warnings are errors)
	$(VENV)/bin/sphinx-build -W --keep-going -E -a -b html -q docs docs/_build/html

bench: install  ## Compare with and without the plugin (bench/; ONLY=backlog,drain for some groups)
	$(PYTHON) bench/run.py $(if $(ONLY),--only $(ONLY))

clean:  ## Remove the virtualenvs, builds, caches and debug emails
	rm -rf $(VENV) $(TEST_VENV) $(DIST) dist.log build *.egg-info .pytest_cache .ruff_cache .hypothesis .import_linter_cache mail docs/_build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
