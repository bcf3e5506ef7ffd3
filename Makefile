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

readme-figures: $(STAMP)
	$(PY) benchmarks/render_readme.py

# The shipped UCF101 / HMDB51 manifests, rebuilt from the official split lists (data_manifests/README.md)
.PHONY: manifests
manifests: $(STAMP)
	$(VENV)/bin/flowprep manifest ucf101 --splits-dir $(SHARED_DATA)/splits/ucf101 --out data_manifests/ucf101.csv
	$(VENV)/bin/flowprep manifest hmdb51 --splits-dir $(SHARED_DATA)/splits/hmdb51 --out data_manifests/hmdb51.csv

# make fuse: fuse the two streams' test scores (and, where held-out training-split scores exist,
# fit the learned methods on them), then build the report folder and print its table.
# Defaults: the run folders of make train / make evaluate (out/runs/spatial, out/runs/temporal).
FUSE_RUNS ?= out/runs
FUSE_SPATIAL ?= $(FUSE_RUNS)/spatial/scores_test.npz
FUSE_TEMPORAL ?= $(FUSE_RUNS)/temporal/scores_test.npz
FUSE_FIT_SPATIAL ?= $(FUSE_RUNS)/spatial/scores_val.npz
FUSE_FIT_TEMPORAL ?= $(FUSE_RUNS)/temporal/scores_val.npz
FUSE_OUT ?= $(FUSE_RUNS)/fusion
REPORT_OUT ?= $(FUSE_RUNS)/report
FUSE_ARGS ?=
.PHONY: fuse
fuse: $(STAMP)
	$(VENV)/bin/twostream fuse --spatial $(FUSE_SPATIAL) --temporal $(FUSE_TEMPORAL) \
		$(if $(wildcard $(FUSE_FIT_SPATIAL)),--fit-spatial $(FUSE_FIT_SPATIAL) --fit-temporal $(FUSE_FIT_TEMPORAL)) \
		--out $(FUSE_OUT) $(FUSE_ARGS)
	$(VENV)/bin/twostream report --spatial $(FUSE_SPATIAL) --temporal $(FUSE_TEMPORAL) --fused $(FUSE_OUT) \
		$(foreach s,spatial temporal,$(if $(wildcard $(FUSE_RUNS)/$(s)/metrics.jsonl),--curves $(s)=$(FUSE_RUNS)/$(s)/metrics.jsonl)) \
		--out $(REPORT_OUT)

# make train / make evaluate: one stream on an extraction folder (default: make extract-flow's
# output); docs/training.md. Continue a stopped run with TRAIN_ARGS=--resume.
SHARDS ?= $(OUT)
STREAM ?= spatial
SPLIT ?= split1
RUN ?= out/runs/$(STREAM)
TRAIN_ARGS ?=
EVAL_PART ?= test
SCORES ?= $(RUN)/scores_$(EVAL_PART).npz
EVAL_ARGS ?=
.PHONY: train evaluate bench-train
train: $(STAMP)
	$(VENV)/bin/twostream train --shards $(SHARDS) --stream $(STREAM) --split $(SPLIT) --out $(RUN) $(TRAIN_ARGS)

evaluate: $(STAMP)
	$(VENV)/bin/twostream evaluate --checkpoint $(RUN)/checkpoint.pt --shards $(SHARDS) --split $(SPLIT) \
		--part $(EVAL_PART) --stream $(STREAM) --out $(SCORES) $(EVAL_ARGS)

bench-train: $(STAMP)
	$(PY) benchmarks/bench_train.py
