# The two commands a learner needs: `make lab` and `make test`. Both set up .venv first.
# `make lab` opens notebooks/00_setup_check; exercises/ and solutions/ are one folder up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fcconv-installed
# JupyterLab refuses to run as root unless told; containers and CI often are root.
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test lint venv clean-venv notebooks-clean exercises

lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_FLAGS) --ServerApp.root_dir="$(CURDIR)" \
		--LabApp.default_url=/lab/tree/notebooks/00_setup_check.ipynb

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

venv: $(STAMP)

# Re-install only when the dependency list changes; an unchanged tree starts in seconds.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

# Strip outputs and execution counts from every committed notebook.
notebooks-clean: $(STAMP)
	$(BIN)/python -m fcconv.nbtools strip notebooks/*.ipynb

# exercises/ is generated from solutions/ (never edit it by hand).
exercises: $(STAMP)
	$(BIN)/python -m fcconv.exercises

clean-venv:
	rm -rf $(VENV)
