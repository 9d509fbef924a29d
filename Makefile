# Two entry points for newcomers: `make demo` and `make test`. Both build .venv from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_out

.PHONY: install demo test system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# KenLM's estimation tools (`corpusmill lm train`): built once from the upstream sources, cached
# outside the checkout (see tools/build_kenlm.sh), copied into the virtualenv.
$(BIN)/lmplz $(BIN)/build_binary &: tools/build_kenlm.sh | $(VENV)/.installed
	bash tools/build_kenlm.sh $(BIN) $(BIN)/python

install: $(VENV)/.installed $(BIN)/lmplz $(BIN)/build_binary

# The whole recipe (pipelines/nemotron4.yaml, profile demo) on a corpus from this machine, then
# $(DEMO_OUT)/report.html. Re-running resumes.
demo: install
	$(BIN)/corpusmill demo --out $(DEMO_OUT)

# The report's test renders it in headless Chromium (Debian's package; CI runs as root with apt).
system-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: install system-deps
	$(BIN)/python -m pytest
