# LoopTool: `make demo` and `make test` are all a fresh machine needs.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Tests start many Python processes (xdist workers, CLI runs, trainers, servers): let them share
# compiled bytecode instead of compiling LoopTool and the tests again in each one.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install demo experiment test test-unit test-slow bench clean

install:  ## create .venv and install everything (no-op when up to date)
	bash scripts/install.sh $(VENV)

demo: install  ## run the main job on the embedded default model
	$(VENV)/bin/looptool demo -w runs/demo

experiment: install  ## does the loop teach? loop vs static at equal GRPO steps (about an hour on 2 cores with AVX512-BF16, hours on AVX2 only)
	$(VENV)/bin/looptool experiment -w runs/experiment$(if $(SEED),-seed$(SEED)) --seed $(or $(SEED),0)

# `--dist loadscope`: a module's tests run in one worker, so that its vLLM server or model (module
# fixtures) starts once. (pytest-xdist 3.8's `loadgroup` does not group under pytest 9: it renames
# a node id pytest no longer reads.) `--no-loadscope-reorder`: modules start in the order
# tests/conftest.py gives them, the longest first, not the ones with the most tests first.
# One thread per process (OMP_NUM_THREADS=1, and vLLM's CPU servers left unpinned): two workers
# share two cores, and a server whose threads are pinned to both cores waits at every step for
# the one that shares its core with the other worker's trainer (benchmarks/test_suite_threads.py).
test: install  ## the whole suite: unit + integration (real vLLM on the CPU), 2 pytest-xdist workers
	OMP_NUM_THREADS=1 VLLM_CPU_OMP_THREADS_BIND=nobind $(PY) -m pytest -q -ra -n 2 --dist loadscope --no-loadscope-reorder --durations=25 $(PYTEST_ARGS)

test-unit: install  ## the fast subset, under a minute on 2 cores (no model; 4 pytest-xdist workers, often waiting on sockets)
	$(PY) -m pytest -q -ra -m "not slow" -n 4 $(PYTEST_ARGS) tests/unit tests/tui

bench: install  ## serving benchmarks; results go to docs/BENCHMARKS.md by hand
	$(PY) benchmarks/bench_serving.py

clean:
	rm -rf runs/demo runs/experiment* .pytest_cache
