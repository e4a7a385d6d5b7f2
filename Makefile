# make demo: create .venv if missing, install pinned versions, run the Old Faithful card (EM and NUTS).
# make test: same environment, the whole test suite (slow checks included).
# make notebooks: re-execute notebooks/*.ipynb at full size, outputs saved in place.
# make docs: the documentation site (Sphinx) into docs/_build/html, warnings as errors.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint notebooks docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gmm-ppl demo --out runs/demo --force

test: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow" -n 2 --durations=10

test-fast: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

notebooks: $(STAMP)
	$(BIN)/python notebooks/run.py

docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -b html -d docs/_build/doctrees docs docs/_build/html

clean:
	rm -rf $(VENV) .pytest_cache docs/_build docs/generated
