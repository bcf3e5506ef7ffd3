# Every target creates .venv and installs the project into it when missing (make install).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SHARED_DATA ?= ../shared/data

# make extract-flow: defaults run on the real clips in ../shared/data/clips
MANIFEST ?= data_manifests/shared_clips.csv
VIDEO_ROOT ?= $(SHARED_DATA)/clips
OUT ?= out/shared_clips
FLOW ?= tvl1
WORKERS ?= 2
EXTRACT_ARGS ?=

.PHONY: install test extract-flow bench-extract bench-codecs bench-flow-params clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

extract-flow: $(STAMP)
	$(VENV)/bin/flowprep extract --manifest $(MANIFEST) --video-root $(VIDEO_ROOT) --out $(OUT) \
		--flow $(FLOW) --workers $(WORKERS) $(EXTRACT_ARGS)

bench-extract: $(STAMP)
	$(PY) benchmarks/bench_extract.py

bench-codecs: $(STAMP)
	$(PY) benchmarks/bench_codecs.py

clean:
	rm -rf out bench_out .pytest_cache

bench-flow-params: $(STAMP)
	$(PY) benchmarks/bench_flow_params.py
