# Every target creates .venv and installs the project into it when missing (make install), and
# calls the project's commands as $(FLOWPREP) and $(TWOSTREAM), the venv's entry points.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FLOWPREP := $(VENV)/bin/flowprep
TWOSTREAM := $(VENV)/bin/twostream
SHARED_DATA ?= ../shared/data

# The embedded default: the demo dataset (docs/demo.md), 2 colours x 4 motions = 8 classes,
# generated from a seed on first use. make extract-flow and make train without arguments work on
# it; make demo runs everything. Sizes are chosen for a 2-core CPU (docs/demo.md, "What make demo runs").
DEMO ?= out/demo
DEMO_SEED ?= 0
DEMO_VIDEOS_PER_CLASS ?= 24
DEMO_FRAMES ?= 20
DEMO_SIZE ?= 112x112
DEMO_CROP ?= 96
DEMO_SPATIAL_EPOCHS ?= 20
DEMO_TEMPORAL_EPOCHS ?= 30
DEMO_EVAL_CLIPS ?= 3
DEMO_DATA := $(DEMO)/data
DEMO_RUNS := $(DEMO)/runs
# ResNet-18 from random initialisation (no pretrained weights without a model hub): SGD with a
# cosine schedule and dropout 0.5 trains both streams in a minute or two at 96 px; a quarter of
# each class's training videos is held out to fit the learned fusions on (docs/fusion.md).
DEMO_TRAIN_ARGS ?= --holdout 0.25 --crop-size $(DEMO_CROP) --batch-size 16 --lr 0.01 --dropout 0.5 \
	--schedule cosine --val-every 5 --val-clips 3 --loader-workers 1 --threads 2
DEMO_EVAL_ARGS ?= --clips $(DEMO_EVAL_CLIPS) --crops ten --loader-workers 1 --threads 2
# every fusion head, the two that look at places (motion, cross-attention) beside mid and attention;
# 15 epochs of batch 32 (the default is 8 on its 96 videos): at 5 each head was still short of what
# it reaches (mid 95.3 -> 98.4 %, attention 95.3 -> 96.9 %), and a head's epoch takes seconds here
DEMO_FEATURE_FUSION_METHODS ?= mid attention motion cross-attention
DEMO_FEATURE_FUSION_ARGS ?= --val-every 0 --epochs 15 --batch-size 32 --loader-workers 1 --threads 2
# the demo's first test video (its manifest's order): make demo draws where the motion head looks in
# it (DEMO_RUNS/report/motion_attention.png), and make predict-demo classifies it from its file
DEMO_FIRST_TEST_VIDEO = $$(awk -F, 'NR > 1 && $$5 == "test" {print $$1; exit}' $(DEMO_DATA)/manifest.csv)

# make extract-flow: MANIFEST, VIDEO_ROOT, OUT, FLOW, WORKERS, EXTRACT_ARGS; default the demo data
# (DIS at the videos' own size: TV-L1 would take an hour for the demo's 3,648 frame pairs).
ifeq ($(origin MANIFEST),undefined)
MANIFEST := $(DEMO_DATA)/manifest.csv
VIDEO_ROOT ?= $(DEMO_DATA)
OUT ?= $(DEMO)/shards
FLOW ?= dis
EXTRACT_ARGS ?= --size $(DEMO_SIZE)
endif
VIDEO_ROOT ?= $(dir $(MANIFEST))
OUT ?= out/shards
FLOW ?= tvl1
WORKERS ?= 2
EXTRACT_ARGS ?=

# make train / make evaluate: one stream on an extraction folder (default: make extract-flow's
# output, the demo data); docs/training.md.
SHARDS ?= $(OUT)
STREAM ?= spatial
SPLIT ?= split1
ifeq ($(SHARDS),$(DEMO)/shards)
RUN ?= $(DEMO_RUNS)/$(STREAM)
TRAIN_ARGS ?= $(DEMO_TRAIN_ARGS) --epochs $(if $(filter spatial,$(STREAM)),$(DEMO_SPATIAL_EPOCHS),$(DEMO_TEMPORAL_EPOCHS))
EVAL_ARGS ?= $(DEMO_EVAL_ARGS)
FEATURE_FUSION_METHODS ?= $(DEMO_FEATURE_FUSION_METHODS)
FEATURE_FUSION_ARGS ?= $(DEMO_FEATURE_FUSION_ARGS)
endif
RUN ?= out/runs/$(STREAM)
TRAIN_ARGS ?=
EVAL_SUBSET ?= test
EVAL_ARGS ?=

# make fuse-features: feature-level fusion (docs/fusion.md) of the two runs in FUSE_RUNS (those
# of make train): a mid and an attention head on the frozen streams, each trained into
# FUSE_RUNS/<method> and evaluated on the test videos (FUSE_RUNS/<method>/scores_test.npz).
# FEATURE_FUSION_ARGS: more training options, e.g. --joint, --subset val, --val-every 0.
# make fuse: fuse the two streams' test scores (and, where both runs hold held-out training-split
# scores, scores_val.npz, fit the learned methods on them), then build the report folder, with the
# feature-level fusions where they exist, and print its table.
FUSE_RUNS ?= $(patsubst %/,%,$(dir $(RUN)))
FEATURE_FUSION_METHODS ?= mid attention
FEATURE_FUSION_ARGS ?=
FEATURE_FUSION_EVAL_ARGS ?= $(EVAL_ARGS)
FUSE_OUT ?= $(FUSE_RUNS)/fusion
REPORT_OUT ?= $(FUSE_RUNS)/report
FUSE_ARGS ?=

# $(call fresh,OUTPUT,INPUT): a shell test that skips the command after it when OUTPUT is newer
# than INPUT (scores already computed from this checkpoint); delete OUTPUT to compute it again
fresh = test $(1) -nt $(2) ||

# make predict-demo (the end of make demo): classify the demo's first held-out test video from its file
# with the trained runs and the best score fusion of make fuse (twostream predict, README "Your own
# videos"), with the fast protocol (3 clips x the centre crop: a few seconds).
DEMO_PREDICT_ARGS ?= --fast --top 3 --threads 2

# make demo-3d: what a clip stream sees that a frame cannot (docs/training.md, clip streams). Its own
# small demo set (48x48 frames, 16 a video: a 3D network on the CPU needs tiny clips), the 2D spatial
# and temporal streams (ResNet-18, as make demo trains them) and two clip streams (tiny3d, 8 frames or
# 8 forward flow fields 2 apart: clip-rgb, clip-flow) trained on it, each evaluated on the test videos
# (the clip streams on the quarter of the training videos they held out too), the 2D streams fused
# (average), the clip streams fused at score level (every late fusion, the learned ones fitted on the
# held-out videos) and at feature level (the heads mid, attention, motion, cross-attention on clip
# pairs, docs/fusion.md); the report's table has the clip streams and their fusions as rows, and a
# picture of where the clip motion head looks. Apart from make demo: it does not fit its time budget.
DEMO3D ?= out/demo3d
DEMO3D_DATA := $(DEMO3D)/data
DEMO3D_RUNS := $(DEMO3D)/runs
DEMO3D_COMMON := --crop-size 40 --batch-size 8 --schedule cosine --val-every 0 --loader-workers 1 --threads 2
DEMO3D_EPOCHS ?= 20
DEMO3D_EVAL := --clips 3 --loader-workers 1 --threads 2
# NAME:STREAM:OPTIONS (spaces as _) of the 2D streams make demo-3d and make demo-motion both train
DEMO3D_2D_RUNS := spatial:spatial:--backbone_resnet18_--lr_0.01_--dropout_0.5 \
	temporal:temporal:--backbone_resnet18_--lr_0.01_--dropout_0.5_--flow-length_5
# NAME:STREAM:OPTIONS of the clip streams: the same clips (length, stride, crop) and the same held-out
# videos, as feature-level fusion pairs them
DEMO3D_CLIP := --backbone_tiny3d_--clip_8_--clip-stride_2_--dropout_0.5_--holdout_0.25
DEMO3D_CLIP_RUNS := clip-rgb:spatial:$(DEMO3D_CLIP)_--lr_0.05_--color-jitter_0 clip-flow:temporal:$(DEMO3D_CLIP)_--lr_0.05
DEMO3D_LATE := average weighted weighted-val svm logreg
DEMO3D_HEADS := mid attention motion cross-attention
DEMO3D_FUSION := --val-every 0 --epochs 5 --batch-size 8 --loader-workers 1 --threads 2
# each head again with these seeds (runs clip-HEAD-seedN; clip-HEAD is seed 0): on 32 test videos one
# seed ranks two heads by a video or two, and the table's medians are what it compares
DEMO3D_HEAD_SEEDS ?= 1 2
DEMO3D_CLIP_EVAL := $(DEMO3D_EVAL) --crops three

# make demo-attention: the fusion heads that look at places (docs/fusion.md, feature-level fusion)
# beside the late and the other feature-level fusions, with two backbone pairs: ResNet-18 and timm's
# ViT-Tiny (16-pixel patches: 4x4 tokens of a 64 px crop; docs/training.md, a two-stream ViT). Its
# own small demo set (80x80 frames, 16 videos a class: a 2-core CPU trains 4 streams and 10 heads on
# it), each pair trained, evaluated on the test and held-out videos, fused (score level, and the
# heads mid, attention, motion, motion-learned, cross-attention), reported with a picture of where
# the motion head looks. Apart from make demo: it does not fit its time budget.
DEMOATT ?= out/demo-attention
DEMOATT_DATA := $(DEMOATT)/data
DEMOATT_SIZE ?= 80x80
DEMOATT_EPOCHS ?= 20
DEMO_VIT ?= timm:vit_tiny_patch16_224
DEMOATT_PAIRS ?= resnet18 vit
DEMOATT_TRAIN := --holdout 0.25 --crop-size 64 --batch-size 16 --lr 0.01 --dropout 0.5 --schedule cosine \
	--val-every 0 --loader-workers 1 --threads 2 --seed $(DEMO_SEED) --epochs $(DEMOATT_EPOCHS)
DEMOATT_EVAL := --clips 3 --crops ten --loader-workers 1 --threads 2
DEMOATT_FUSION := --val-every 0 --epochs 5 --loader-workers 1 --threads 2
DEMOATT_HEADS := mid attention motion cross-attention
DEMOATT_REPORTED := mid attention motion motion-learned cross-attention
# the same make targets as make demo, on this set: $(call demoatt,TARGET,PAIR,VARIABLES)
demoatt = $(MAKE) --no-print-directory $(1) SHARDS=$(DEMOATT)/shards FUSE_RUNS=$(DEMOATT)/runs/$(2) $(3)


# make demo-motion: motion without precomputed flow (docs/training.md, motion without precomputed
# flow). On make demo-3d's small set (its data, shards and 2D runs, shared), a dynamic-image stream
# (one dynamic image of 8 frames 2 apart) and two learned-flow streams (a learned TV-L1 layer on 5
# frames 2 apart: on the frames, and on the feature maps after ResNet-18's first stage,
# learned-flow-maps), all ResNet-18, trained and evaluated as the 2D streams; each fused with the
# spatial stream (and the dynamic-image with the temporal; the spatial with the temporal, the
# baseline), each fusion a score average; the report's table has them as rows (the temporal run is
# given second: fuse refuses temporal scores in the spatial place, and an average is symmetric).
# Then benchmarks/bench_motion.py: training cost per sample of each stream, and the flow
# extraction the new streams do without. Apart from make demo: it does not fit its time budget.
DEMOMOTION_RUNS := dynamic-image:dynamic-image:--backbone_resnet18_--lr_0.01_--dropout_0.5_--clip_8_--clip-stride_2 \
	learned-flow:learned-flow:--backbone_resnet18_--lr_0.01_--dropout_0.5_--clip_5_--clip-stride_2 \
	learned-flow-maps:learned-flow:--backbone_resnet18_--lr_0.01_--dropout_0.5_--clip_5_--clip-stride_2_--flow-on_features
DEMOMOTION_FUSIONS := spatial+temporal:spatial:temporal spatial+learned-flow:spatial:learned-flow \
	spatial+learned-flow-maps:spatial:learned-flow-maps \
	spatial+dynamic-image:spatial:dynamic-image temporal+dynamic-image:dynamic-image:temporal
DEMOMOTION_REPORT := $(DEMO3D_RUNS)/motion-report

# make demo-heads (after make demo): the fusion heads across seeds. make demo trains each head once,
# with seed 0; this trains each again with the seeds in DEMOHEADS_SEEDS, the same recipe on make
# demo's frozen streams, evaluates them on the test videos, and reports every run beside the late
# fusions (DEMO_RUNS/heads-report): on 64 test videos one seed ranks two heads by a video or two.
DEMOHEADS_SEEDS ?= 1 2
DEMOHEADS := $(DEMO_RUNS)/heads-seeds

# make demo-learned-flow: the streams that need no precomputed flow on make demo's own data and with
# its recipe (ResNet-18 from scratch, DEMO_TRAIN_ARGS, the temporal stream's epochs), each alone and
# averaged with make demo's spatial stream: issue 28's targets are stated on this demo
DEMOLF_RUNS := learned-flow:--clip_5_--clip-stride_2 learned-flow-maps:--clip_5_--clip-stride_2_--flow-on_features \
	dynamic-image:--clip_8_--clip-stride_2
DEMOLF_REPORT := $(DEMO_RUNS)/learned-flow-report

.PHONY: install test demo demo-3d demo-attention demo-heads demo-motion demo-learned-flow predict-demo bench-predict extract-flow train evaluate fuse-features fuse manifests clean \
	bench-extract bench-codecs bench-flow-params bench-train bench-gpu-flow check-gpu gpu-session bench-scale bench-reliability readme-figures

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# make demo: the whole job on the demo data, on a fresh machine: generate the videos, extract
# frames and flow, train both streams, evaluate them on the test videos and on the held-out part
# of the training videos (which the learned score fusions are fitted on), train and evaluate the
# feature-level fusions, fuse the scores, report, print the table.
# Every step resumes or is idempotent: run it again after an interruption. Its wall time (install
# excluded) goes to DEMO_RUNS/report/timing.json, which make readme-figures puts in the README's table.
demo: $(STAMP)
	@mkdir -p $(DEMO_RUNS) && echo $$(date +%s) $$(test -d $(DEMO)/shards && echo resumed || echo from-scratch) \
		> $(DEMO_RUNS)/.started
	$(MAKE) --no-print-directory extract-flow
	$(MAKE) --no-print-directory train STREAM=spatial
	$(MAKE) --no-print-directory train STREAM=temporal
	$(foreach s,spatial temporal,$(foreach p,test val,\
		$(call fresh,$(DEMO_RUNS)/$(s)/scores_$(p).npz,$(DEMO_RUNS)/$(s)/checkpoint.pt) \
		$(MAKE) --no-print-directory evaluate STREAM=$(s) EVAL_SUBSET=$(p) &&)) true
	$(MAKE) --no-print-directory fuse-features
	$(MAKE) --no-print-directory fuse
	$(call fresh,$(DEMO_RUNS)/report/motion_attention.png,$(DEMO_RUNS)/motion/checkpoint.pt) \
		$(TWOSTREAM) fuse-features show $(DEMO_RUNS)/motion --video $(DEMO_FIRST_TEST_VIDEO) --rows 4 \
		--out $(DEMO_RUNS)/report/motion_attention.png
	$(MAKE) --no-print-directory predict-demo
	@read start how < $(DEMO_RUNS)/.started && printf '{"seconds": %d, "start": "%s", "cores": %d, "date": "%s"}\n' \
		$$(( $$(date +%s) - start )) $$how $$(nproc) $$(date +%F) > $(DEMO_RUNS)/report/timing.json

demo-3d: $(STAMP)
	test -f $(DEMO3D_DATA)/manifest.csv || $(FLOWPREP) make-demo-data --out $(DEMO3D_DATA) --seed $(DEMO_SEED) \
		--videos-per-class 12 --frames 16 --size 48x48
	$(FLOWPREP) extract --manifest $(DEMO3D_DATA)/manifest.csv --video-root $(DEMO3D_DATA) --out $(DEMO3D)/shards \
		--flow dis --workers $(WORKERS) --size 48x48
	$(foreach r,$(DEMO3D_2D_RUNS) $(DEMO3D_CLIP_RUNS),\
		$(eval n=$(word 1,$(subst :, ,$(r))))$(eval s=$(word 2,$(subst :, ,$(r))))\
		{ test -f $(DEMO3D_RUNS)/$(n)/checkpoint.pt || $(TWOSTREAM) train $(DEMO3D)/shards --stream $(s) \
			--out $(DEMO3D_RUNS)/$(n) --epochs $(DEMO3D_EPOCHS) --seed $(DEMO_SEED) $(DEMO3D_COMMON) \
			$(subst _, ,$(word 3,$(subst :, ,$(r)))); } && \
		$(foreach p,test $(if $(filter clip-%,$(n)),val),\
		{ $(call fresh,$(DEMO3D_RUNS)/$(n)/scores_$(p).npz,$(DEMO3D_RUNS)/$(n)/checkpoint.pt) \
		$(TWOSTREAM) evaluate $(DEMO3D_RUNS)/$(n) --extraction $(DEMO3D)/shards --subset $(p) \
			$(if $(filter clip-%,$(n)),$(DEMO3D_CLIP_EVAL),$(DEMO3D_EVAL)); } &&)) true
	$(TWOSTREAM) fuse $(DEMO3D_RUNS)/spatial $(DEMO3D_RUNS)/temporal --method average --out $(DEMO3D_RUNS)/fusion
	$(TWOSTREAM) fuse $(DEMO3D_RUNS)/clip-rgb $(DEMO3D_RUNS)/clip-flow --out $(DEMO3D_RUNS)/fusion-clip
	$(foreach m,$(DEMO3D_HEADS),$(foreach s,$(DEMO_SEED) $(DEMO3D_HEAD_SEEDS),\
		$(eval h=clip-$(m)$(if $(filter $(DEMO_SEED),$(s)),,-seed$(s)))\
		{ test -f $(DEMO3D_RUNS)/$(h)/checkpoint.pt || $(TWOSTREAM) fuse-features train $(DEMO3D)/shards \
			--spatial $(DEMO3D_RUNS)/clip-rgb --temporal $(DEMO3D_RUNS)/clip-flow --method $(m) --seed $(s) \
			--out $(DEMO3D_RUNS)/$(h) $(DEMO3D_FUSION); } && \
		{ $(call fresh,$(DEMO3D_RUNS)/$(h)/scores_test.npz,$(DEMO3D_RUNS)/$(h)/checkpoint.pt) \
			$(TWOSTREAM) fuse-features evaluate $(DEMO3D_RUNS)/$(h) --extraction $(DEMO3D)/shards \
				$(DEMO3D_CLIP_EVAL); } &&)) true
	$(TWOSTREAM) report $(DEMO3D_RUNS)/spatial $(DEMO3D_RUNS)/temporal --fused $(DEMO3D_RUNS)/fusion \
		$(foreach n,clip-rgb clip-flow,--row $(n)=$(DEMO3D_RUNS)/$(n)/scores_test.npz) \
		$(foreach m,$(DEMO3D_LATE),--row clip-$(m)=$(DEMO3D_RUNS)/fusion-clip/$(m).npz) \
		$(foreach m,$(DEMO3D_HEADS),--row clip-$(m)=$(DEMO3D_RUNS)/clip-$(m)/scores_test.npz \
			$(foreach s,$(DEMO3D_HEAD_SEEDS),--row clip-$(m)-seed$(s)=$(DEMO3D_RUNS)/clip-$(m)-seed$(s)/scores_test.npz)) \
		--title "Clip streams on the demo data" --out $(DEMO3D_RUNS)/report
	$(TWOSTREAM) fuse-features show $(DEMO3D_RUNS)/clip-motion --extraction $(DEMO3D)/shards --video red-up-010 --rows 1 \
		--out $(DEMO3D_RUNS)/report/clip_motion_attention.png

demo-attention: $(STAMP)
	test -f $(DEMOATT_DATA)/manifest.csv || $(FLOWPREP) make-demo-data --out $(DEMOATT_DATA) --seed $(DEMO_SEED) \
		--videos-per-class 16 --frames 16 --size $(DEMOATT_SIZE)
	$(FLOWPREP) extract --manifest $(DEMOATT_DATA)/manifest.csv --video-root $(DEMOATT_DATA) --out $(DEMOATT)/shards \
		--flow dis --workers $(WORKERS) --size $(DEMOATT_SIZE)
	$(foreach b,$(DEMOATT_PAIRS),$(foreach s,spatial temporal,\
		{ test -f $(DEMOATT)/runs/$(b)/$(s)/checkpoint.pt || $(call demoatt,train,$(b),STREAM=$(s) \
			RUN=$(DEMOATT)/runs/$(b)/$(s) TRAIN_ARGS="$(DEMOATT_TRAIN) --backbone $(if $(filter vit,$(b)),$(DEMO_VIT),$(b))"); } && \
		$(foreach p,test val,{ $(call fresh,$(DEMOATT)/runs/$(b)/$(s)/scores_$(p).npz,$(DEMOATT)/runs/$(b)/$(s)/checkpoint.pt) \
			$(call demoatt,evaluate,$(b),STREAM=$(s) RUN=$(DEMOATT)/runs/$(b)/$(s) EVAL_SUBSET=$(p) EVAL_ARGS="$(DEMOATT_EVAL)"); } &&)) \
		$(call demoatt,fuse-features,$(b),FEATURE_FUSION_METHODS="$(DEMOATT_HEADS)" \
			FEATURE_FUSION_ARGS="$(DEMOATT_FUSION)" FEATURE_FUSION_EVAL_ARGS="$(DEMOATT_EVAL)") && \
		{ test -f $(DEMOATT)/runs/$(b)/motion-learned/checkpoint.pt || $(TWOSTREAM) fuse-features train $(DEMOATT)/shards \
			--spatial $(DEMOATT)/runs/$(b)/spatial --temporal $(DEMOATT)/runs/$(b)/temporal --method motion --hidden 64 \
			--out $(DEMOATT)/runs/$(b)/motion-learned $(DEMOATT_FUSION); } && \
		{ $(call fresh,$(DEMOATT)/runs/$(b)/motion-learned/scores_test.npz,$(DEMOATT)/runs/$(b)/motion-learned/checkpoint.pt) \
			$(TWOSTREAM) fuse-features evaluate $(DEMOATT)/runs/$(b)/motion-learned $(DEMOATT_EVAL); } && \
		$(call demoatt,fuse,$(b),FEATURE_FUSION_METHODS="$(DEMOATT_REPORTED)") && \
		$(TWOSTREAM) fuse-features show $(DEMOATT)/runs/$(b)/motion --video red-up-015 --rows 4 \
			--out $(DEMOATT)/runs/$(b)/report/motion_attention.png &&) true

demo-heads: $(STAMP)
	$(foreach h,$(DEMO_FEATURE_FUSION_METHODS),$(foreach s,$(DEMOHEADS_SEEDS),\
		{ test -f $(DEMOHEADS)/$(h)-seed$(s)/checkpoint.pt || $(TWOSTREAM) fuse-features train $(DEMO)/shards \
			--spatial $(DEMO_RUNS)/spatial --temporal $(DEMO_RUNS)/temporal --method $(h) --seed $(s) \
			--out $(DEMOHEADS)/$(h)-seed$(s) $(DEMO_FEATURE_FUSION_ARGS); } && \
		{ $(call fresh,$(DEMOHEADS)/$(h)-seed$(s)/scores_test.npz,$(DEMOHEADS)/$(h)-seed$(s)/checkpoint.pt) \
			$(TWOSTREAM) fuse-features evaluate $(DEMOHEADS)/$(h)-seed$(s) $(DEMO_EVAL_ARGS); } &&)) true
	$(TWOSTREAM) report $(DEMO_RUNS)/spatial $(DEMO_RUNS)/temporal --fused $(DEMO_RUNS)/fusion \
		$(foreach h,$(DEMO_FEATURE_FUSION_METHODS),--row $(h)-seed0=$(DEMO_RUNS)/$(h)/scores_test.npz \
			$(foreach s,$(DEMOHEADS_SEEDS),--row $(h)-seed$(s)=$(DEMOHEADS)/$(h)-seed$(s)/scores_test.npz)) \
		--title "Fusion heads across seeds on the demo data" --out $(DEMO_RUNS)/heads-report

demo-motion: $(STAMP)
	test -f $(DEMO3D_DATA)/manifest.csv || $(FLOWPREP) make-demo-data --out $(DEMO3D_DATA) --seed $(DEMO_SEED) \
		--videos-per-class 12 --frames 16 --size 48x48
	$(FLOWPREP) extract --manifest $(DEMO3D_DATA)/manifest.csv --video-root $(DEMO3D_DATA) --out $(DEMO3D)/shards \
		--flow dis --workers $(WORKERS) --size 48x48
	$(foreach r,$(DEMO3D_2D_RUNS) $(DEMOMOTION_RUNS),\
		$(eval n=$(word 1,$(subst :, ,$(r))))$(eval s=$(word 2,$(subst :, ,$(r))))\
		{ test -f $(DEMO3D_RUNS)/$(n)/checkpoint.pt || $(TWOSTREAM) train $(DEMO3D)/shards --stream $(s) \
			--out $(DEMO3D_RUNS)/$(n) --epochs $(DEMO3D_EPOCHS) --seed $(DEMO_SEED) $(DEMO3D_COMMON) \
			$(subst _, ,$(word 3,$(subst :, ,$(r)))); } && \
		{ $(call fresh,$(DEMO3D_RUNS)/$(n)/scores_test.npz,$(DEMO3D_RUNS)/$(n)/checkpoint.pt) \
		$(TWOSTREAM) evaluate $(DEMO3D_RUNS)/$(n) $(DEMO3D_EVAL); } &&) true
	$(foreach f,$(DEMOMOTION_FUSIONS),$(eval w=$(subst :, ,$(f)))\
		$(TWOSTREAM) fuse $(DEMO3D_RUNS)/$(word 2,$(w)) $(DEMO3D_RUNS)/$(word 3,$(w)) --method average \
			--out $(DEMO3D_RUNS)/fusion-$(word 1,$(w)) &&) true
	$(TWOSTREAM) report $(DEMO3D_RUNS)/spatial $(DEMO3D_RUNS)/temporal \
		$(foreach r,$(DEMOMOTION_RUNS),--row $(word 1,$(subst :, ,$(r)))=$(DEMO3D_RUNS)/$(word 1,$(subst :, ,$(r)))/scores_test.npz) \
		$(foreach f,$(DEMOMOTION_FUSIONS),--row $(word 1,$(subst :, ,$(f)))=$(DEMO3D_RUNS)/fusion-$(word 1,$(subst :, ,$(f)))/average.npz) \
		--title "Motion without precomputed flow on the demo data" --out $(DEMOMOTION_REPORT)
	$(PY) benchmarks/bench_motion.py --shards $(DEMO3D)/shards --runs $(DEMO3D_RUNS)

demo-learned-flow: $(STAMP)
	test -f $(DEMO_RUNS)/spatial/scores_test.npz -a -f $(DEMO_RUNS)/temporal/scores_test.npz || $(MAKE) --no-print-directory demo
	$(foreach r,$(DEMOLF_RUNS),$(eval n=$(word 1,$(subst :, ,$(r))))\
		{ test -f $(DEMO_RUNS)/$(n)/checkpoint.pt || $(TWOSTREAM) train $(DEMO)/shards \
			--stream $(if $(filter dynamic-image,$(n)),dynamic-image,learned-flow) --out $(DEMO_RUNS)/$(n) \
			--backbone resnet18 --epochs $(DEMO_TEMPORAL_EPOCHS) --seed $(DEMO_SEED) $(DEMO_TRAIN_ARGS) \
			$(subst _, ,$(word 2,$(subst :, ,$(r)))); } && \
		{ $(call fresh,$(DEMO_RUNS)/$(n)/scores_test.npz,$(DEMO_RUNS)/$(n)/checkpoint.pt) \
		$(TWOSTREAM) evaluate $(DEMO_RUNS)/$(n) $(DEMO_EVAL_ARGS); } && \
		$(TWOSTREAM) fuse $(DEMO_RUNS)/spatial $(DEMO_RUNS)/$(n) --method average --out $(DEMO_RUNS)/fusion-spatial+$(n) &&) true
	$(TWOSTREAM) report $(DEMO_RUNS)/spatial $(DEMO_RUNS)/temporal \
		$(foreach r,$(DEMOLF_RUNS),--row $(word 1,$(subst :, ,$(r)))=$(DEMO_RUNS)/$(word 1,$(subst :, ,$(r)))/scores_test.npz) \
		$(foreach r,$(DEMOLF_RUNS),--row spatial+$(word 1,$(subst :, ,$(r)))=$(DEMO_RUNS)/fusion-spatial+$(word 1,$(subst :, ,$(r)))/average.npz) \
		--title "Motion without precomputed flow on make demo's data" --out $(DEMOLF_REPORT)

extract-flow: $(STAMP) $(MANIFEST)
	$(FLOWPREP) extract --manifest $(MANIFEST) --video-root $(VIDEO_ROOT) --out $(OUT) \
		--flow $(FLOW) --workers $(WORKERS) $(EXTRACT_ARGS)

$(DEMO_DATA)/manifest.csv: | $(STAMP)
	$(FLOWPREP) make-demo-data --out $(DEMO_DATA) --seed $(DEMO_SEED) \
		--videos-per-class $(DEMO_VIDEOS_PER_CLASS) --frames $(DEMO_FRAMES) --size $(DEMO_SIZE)

# a run folder that holds a checkpoint is continued (the trainer refuses changed options)
train: $(STAMP)
	$(TWOSTREAM) train $(SHARDS) --stream $(STREAM) --split $(SPLIT) --out $(RUN) \
		$(if $(wildcard $(RUN)/checkpoint.pt),--resume) $(TRAIN_ARGS)

evaluate: $(STAMP)
	$(TWOSTREAM) evaluate $(RUN) --extraction $(SHARDS) --split $(SPLIT) \
		--subset $(EVAL_SUBSET) --stream $(STREAM) $(EVAL_ARGS)

# a run folder that holds a checkpoint is continued
fuse-features: $(STAMP)
	$(foreach m,$(FEATURE_FUSION_METHODS),\
	$(TWOSTREAM) fuse-features train $(SHARDS) --spatial $(FUSE_RUNS)/spatial \
		--temporal $(FUSE_RUNS)/temporal --split $(SPLIT) --method $(m) \
		--out $(FUSE_RUNS)/$(m) \
		$(if $(wildcard $(FUSE_RUNS)/$(m)/checkpoint.pt),--resume) $(FEATURE_FUSION_ARGS) && \
	$(call fresh,$(FUSE_RUNS)/$(m)/scores_test.npz,$(FUSE_RUNS)/$(m)/checkpoint.pt) \
	$(TWOSTREAM) fuse-features evaluate $(FUSE_RUNS)/$(m) --extraction $(SHARDS) \
		--split $(SPLIT) $(FEATURE_FUSION_EVAL_ARGS) && ) true

fuse: $(STAMP)
	$(TWOSTREAM) fuse $(FUSE_RUNS)/spatial $(FUSE_RUNS)/temporal --out $(FUSE_OUT) $(FUSE_ARGS)
	$(TWOSTREAM) report $(FUSE_RUNS)/spatial $(FUSE_RUNS)/temporal --fused $(FUSE_OUT) \
		$(foreach m,$(FEATURE_FUSION_METHODS),$(if $(wildcard $(FUSE_RUNS)/$(m)/scores_test.npz),--fused $(FUSE_RUNS)/$(m)/scores_test.npz)) \
		--out $(REPORT_OUT)

predict-demo: $(STAMP)
	@set -- $$(awk -F, 'NR > 1 && $$5 == "test" {print $$2, $$4; exit}' $(DEMO_DATA)/manifest.csv) && \
	echo "twostream predict on a held-out test video, $$1 (its class: $$2):" && \
	$(TWOSTREAM) predict $(DEMO_RUNS)/spatial $(DEMO_RUNS)/temporal --fusion $(FUSE_OUT) $(DEMO_DATA)/$$1 \
		$(DEMO_PREDICT_ARGS)

# The shipped UCF101 / HMDB51 manifests, rebuilt from the official split lists (data_manifests/README.md)
manifests: $(STAMP)
	$(FLOWPREP) manifest ucf101 --splits-dir $(SHARED_DATA)/splits/ucf101 --out data_manifests/ucf101.csv
	$(FLOWPREP) manifest hmdb51 --splits-dir $(SHARED_DATA)/splits/hmdb51 --out data_manifests/hmdb51.csv

# Benchmarks (docs/benchmarks.md, each section names its own); make readme-figures puts their saved
# results (benchmarks/results/*.json) into docs/benchmarks.md and docs/reliability.md, and the demos'
# tables into README.md and docs/demo.md.
bench-extract: $(STAMP)
	$(PY) benchmarks/bench_extract.py

bench-codecs: $(STAMP)
	$(PY) benchmarks/bench_codecs.py

bench-flow-params: $(STAMP)
	$(PY) benchmarks/bench_flow_params.py

# twostream predict's videos/s (files, two protocols) and --live's frames/s and latency (docs/benchmarks.md, "Predicting new videos")
bench-predict: $(STAMP)
	$(PY) benchmarks/bench_predict.py

bench-train: $(STAMP)
	$(PY) benchmarks/bench_train.py --repeats 5

# extraction on a Dask cluster against local workers, training in 1 and 2 processes, a large index (docs/cluster.md)
bench-scale: $(STAMP)
	$(PY) benchmarks/bench_scale.py

# the reliability suite's whole sweep: faults injected and bad input (tests/support/reliability/)
bench-reliability: $(STAMP)
	$(PY) benchmarks/bench_reliability.py

# The GPU targets install nothing: a GPU node often has no internet and its own torch and Triton.
# They run the checkout with the venv's Python where there is one, else GPU_PYTHON (python3), and
# PYTHONPATH=. (the same as `PYTHONPATH=. python benchmarks/check_gpu.py` by hand).
GPU_PYTHON ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))

# tvl1-torch on the CPU and on every GPU found, the long sweep (docs/gpu_flow.md)
bench-gpu-flow:
	PYTHONPATH=. $(GPU_PYTHON) benchmarks/bench_gpu_flow.py

# one GPU machine checked end to end in under 10 minutes; without CUDA, every check on the CPU
check-gpu:
	PYTHONPATH=. $(GPU_PYTHON) benchmarks/check_gpu.py $(CHECK_GPU_ARGS)

# a GPU session's measurements in one go, results under $(OUT) (benchmarks/gpu_session.sh)
gpu-session:
	GPU_PYTHON=$(GPU_PYTHON) OUT=$(or $(OUT),out/gpu_session) sh benchmarks/gpu_session.sh

readme-figures: $(STAMP)
	$(PY) benchmarks/render_readme.py

clean:
	rm -rf out bench_out .pytest_cache
