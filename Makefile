# Two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN := torch==2.13.0

.PHONY: install demo test lint protos pytest browser-deps bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch first: a looser requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: install
	bash scripts/demo.sh

protos: install
	$(PY) scripts/gen_protos.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy his_sdk adapters approval_service inference_bridge

browser-deps:
	PYTHON=$(PY) bash scripts/install_browser_test_deps.sh

pytest: install browser-deps
	@$(PY) -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is missing"; exit 1; fi; \
	exit $$rc

test: lint pytest

bench: install
	$(PY) bench/gateway_read.py

clean:
	rm -rf $(VENV) .his .pytest_cache .mypy_cache .ruff_cache
