# pstack: `make demo` runs the main job, `make test` runs the tests.
# Both first install what they need: a virtual env in .venv with the Python
# packages (setup.cfg), after checking for g++ and Python's venv module, and
# with apt: redis-server for the cluster, tmux for the test that drives `top`,
# iproute2 (network namespaces: hosts on one machine) and openssh-server
# (an sshd per namespace) for the multi-host tests, libxml2-dev for psim's
# C instance reader (psim/core/instance_reader.cpp).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-loaded deps system bench reliability clean

demo: $(STAMP) system
	$(PY) -m pcli.demo

test: $(STAMP) system
	$(PY) -m pytest -q -m "not slow"

# The client-side regions (application engines, the debugger, `pcli test`)
# with three CPU-bound programs running beside them: a busy machine must not
# fail them.  The burners stop whatever happens (the trap), and the target
# fails if the tests do.
LOADED_TESTS := tests/cluster/test_app_engine.py tests/cluster/test_process_debugger.py \
                tests/cluster/test_apptest.py tests/cluster/test_app_regions.py
test-loaded: $(STAMP) system
	@pids=""; trap 'kill $$pids 2>/dev/null' EXIT INT TERM; \
	for i in 1 2 3; do $(PY) -c "while True: pass" & pids="$$pids $$!"; done; \
	echo "3 CPU burners:$$pids"; \
	$(PY) -m pytest -q $(LOADED_TESTS)

# docs/reliability.md's fault table, from the fault tests' own observations
FAULT_TESTS := tests/cluster/test_faults.py tests/cluster/test_curve.py tests/cluster/test_dataplane_auth.py tests/cluster/test_processes.py tests/cluster/test_distributed.py \
               tests/cluster/test_local_cluster.py tests/cluster/test_multihost.py tests/cluster/test_limits.py \
               tests/cluster/test_sandbox.py tests/cluster/test_requests.py tests/cluster/test_burst.py \
               tests/cluster/test_bounded.py tests/cluster/test_disk_full.py \
               tests/cluster/test_app_engine.py tests/cluster/test_process_debugger.py    # and the slow tests make test leaves out
reliability: $(STAMP) system
	rm -f $(VENV)/faults.jsonl
	PSTACK_BURST=1000 PSTACK_FAULT_TABLE=$(CURDIR)/$(VENV)/faults.jsonl $(PY) -m pytest -q $(FAULT_TESTS)
	cd tests/cluster && $(CURDIR)/$(PY) -m faults $(CURDIR)/$(VENV)/faults.jsonl $(CURDIR)/docs/reliability.md

bench: $(STAMP)
	$(PY) bench/bench_psim.py

deps: $(STAMP) system

system:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v tmux >/dev/null 2>&1 || missing="$$missing tmux"; \
	command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing="$$missing iproute2"; \
	command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	[ -f /usr/include/libxml2/libxml/parser.h ] || missing="$$missing libxml2-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing$$missing (apt)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get -o DPkg::Lock::Timeout=120 update -qq && \
	  apt-get -o DPkg::Lock::Timeout=120 install -y -qq $$missing; \
	fi

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
