# The two commands a learner needs: `make lab` and `make test`. Both set up .venv first.
# `make lab` opens notebooks/00_setup_check; exercises/ and solutions/ are one folder up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fcconv-installed
# JupyterLab refuses to run as root unless told; containers and CI often are root.
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test lint venv pretrained clean-venv notebooks-clean exercises present slides handouts weights

# The course's own Jupyter settings (etc/jupyter): no news pop-up, no update or news fetch, a
# read-only extension manager. Nothing leaves the machine.
COURSE_CONFIG := JUPYTER_CONFIG_PATH="$(CURDIR)/etc/jupyter"

lab: $(STAMP) pretrained
	$(COURSE_CONFIG) $(BIN)/jupyter lab $(LAB_FLAGS) --ServerApp.root_dir="$(CURDIR)" \
		--LabApp.default_url=/lab/tree/notebooks/00_setup_check.ipynb

# Slides with live widgets: JupyterLab opens one walkthrough; press the toolbar's deck button
# (jupyterlab-slideshow) to present it from its slide metadata: make slides NB=05
slides: $(STAMP)
	@nb="$(wildcard notebooks/$(NB)_*.ipynb)"; \
	test -n "$(NB)" -a -n "$$nb" || { echo "usage: make slides NB=05 (a walkthrough's number)"; exit 2; }; \
	$(COURSE_CONFIG) $(BIN)/jupyter lab $(LAB_FLAGS) --ServerApp.root_dir="$(CURDIR)" \
		--LabApp.default_url=/lab/tree/$$nb

test: $(STAMP) pretrained
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

venv: $(STAMP) pretrained

# Present one walkthrough as a Voila app (code hidden, widgets live, offline): make present NB=05
# With no NB, an index page links every walkthrough. The "fcconv" template loads nothing from a CDN.
NB ?=
present: $(STAMP)
	@nb="$(if $(NB),$(wildcard notebooks/$(NB)_*.ipynb),notebooks/)"; \
	test -n "$$nb" || { echo "no walkthrough notebooks/$(NB)_*.ipynb (try NB=05)"; exit 2; }; \
	echo "presenting $$nb (Ctrl-C to stop)"; \
	$(COURSE_CONFIG) JUPYTER_PATH="$(CURDIR)/share/jupyter" $(BIN)/voila --template=fcconv "$$nb"

# Re-install only when the dependency list changes; an unchanged tree starts in seconds.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

# MTCNN's trained nets (notebook 09, python -m fcconv faces): taken once from the facenet-pytorch
# wheel on the package index into the course cache, checked against trained/pretrained.json's
# sha256. When they are there and intact this does nothing (no network); notebooks never fetch.
pretrained: $(STAMP)
	$(BIN)/python -m fcconv.course.fetch

lint: $(STAMP)
	$(BIN)/ruff check .

# Strip outputs and execution counts from every committed notebook.
notebooks-clean: $(STAMP)
	$(BIN)/python -m tools.nbtools strip notebooks/*.ipynb

# Static HTML of every walkthrough, executed, widgets embedded, viewable offline, in handouts/.
# Needs npm once, to fetch require.js, the widget renderer and MathJax from the npm registry.
handouts: $(STAMP)
	$(BIN)/python -m tools.handouts
	@echo "open handouts/index.html (or serve: $(BIN)/python -m http.server -d handouts)"

# Retrain the shipped models (face and digit classifiers) from their fixed seeds and rewrite
# fcconv/course/trained/*.pt and the checksums in its weights.json. Notebooks only load them.
weights: $(STAMP)
	$(BIN)/python -m fcconv.course.retrain

# exercises/ is generated from solutions/ (never edit it by hand).
exercises: $(STAMP)
	$(BIN)/python -m tools.exercises

clean-venv:
	rm -rf $(VENV)
