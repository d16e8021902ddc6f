# Two set-up-free commands: `make reproduce` and `make test`. Each creates .venv with the pinned
# dependencies of pyproject.toml when it is missing or older than pyproject.toml, then runs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.jrft-installed
PROFILE ?= cpu
ARGS   ?=

.PHONY: venv test reproduce lab clean-runs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, alone, so that pip takes the CPU build of the pinned version
	$(PY) -m pip install --quiet "$$(grep -o -m1 '"torch==[0-9.]*' pyproject.toml | tr -d '"')"
	$(PY) -m pip install --quiet -e .
	-git rev-parse --git-dir >/dev/null 2>&1 && $(VENV)/bin/nbstripout --install
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

reproduce: $(STAMP)
	$(PY) -m jrft_utils.reproduce --profile $(PROFILE) $(ARGS)
	$(PY) -m jrft_utils.report

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean-runs:
	rm -rf runs/
