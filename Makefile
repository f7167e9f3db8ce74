# pstack: `make demo` runs the main job, `make test` runs the tests.
# Both first install what they need: a virtual env in .venv with the Python
# packages (setup.cfg), after checking for g++ and Python's venv module, and
# redis-server (apt) for the cluster.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test deps redis bench clean

demo: $(STAMP) redis
	$(PY) -m pcli.demo

test: $(STAMP) redis
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/bench_psim.py

deps: $(STAMP) redis

redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "Installing redis-server (apt)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get -o DPkg::Lock::Timeout=120 update -qq && \
	  apt-get -o DPkg::Lock::Timeout=120 install -y -qq redis-server; }

$(STAMP): setup.cfg pyproject.toml
	@command -v g++ >/dev/null 2>&1 || { \
	  echo "pstack compiles POETS handlers with g++, which is missing."; \
	  echo "Install it with: apt-get install -y g++"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { \
	  echo "Installing Python's venv module (python3-venv)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=120 python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) *.egg-info build
