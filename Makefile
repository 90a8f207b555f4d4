# advdf — every target that needs Python depends on the venv, so each works as the first command on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCALE ?= smoke
ARGS ?=
DATA_SEEDS ?=
# DATA_SEEDS=0,1,2: run a reproduce target once per synthetic data seed and compare findings and cells across them
SEEDS_ARG := $(if $(strip $(DATA_SEEDS)),--data-seeds $(DATA_SEEDS))
LAUNCHER ?=
DRY_RUN ?=
# LAUNCHER=slurm: train each stage's runs as a job array (hydra/launcher=slurm), then collect the tables here;
# DRY_RUN=1: print the stages, their jobs and the device-hours of their steps (timed here), and run nothing
STAGE_ARGS := $(if $(strip $(LAUNCHER)),--launcher $(LAUNCHER)) $(if $(strip $(DRY_RUN)),--dry-run)

.PHONY: install test test-fast lint reproduce-table1 reproduce-table2 reproduce-table3 reproduce-table4 reproduce-kra \
	reproduce-ffm reproduce-cdmaa \
	bench-attacks bench-faces clean help

help:  ## list targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,bench,faces,assess]"
	# torchattacks (the attack benchmark's reference) pins requests~=2.25 and facenet-pytorch (MTCNN faces)
	# torch<2.3, which the other pins exclude: installed without their dependencies, which advdf's own provide.
	$(PY) -m pip install --quiet --no-deps -c constraints.txt torchattacks facenet-pytorch
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install advdf[dev] with the pinned constraints (idempotent)

test: $(STAMP)  ## the whole suite (≤ 15 min on 2 cores), SLURM and DDP included
	$(PY) -m pytest tests

test-fast: $(STAMP)  ## the suite without end-to-end runs
	$(PY) -m pytest tests -m "not slow"

lint: $(STAMP)  ## ruff, and the import-layer contract (pyproject's [tool.importlinter])
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

reproduce-table1: $(STAMP)  ## seed 000 Table 1 (9 detectors, base + AugMix) and seed 001 Table 1; SCALE=smoke|paper DATA_SEEDS=0,1,2
	$(PY) -m advdf.papers.reproduce table1 --scale $(SCALE) $(SEEDS_ARG) $(STAGE_ARGS) $(ARGS)

reproduce-table2: $(STAMP)  ## seed 000 Table 2 (9 detectors x 7 attacks x 11 defenses, denoisers trained) + adaptive grid; SCALE=smoke|paper DATA_SEEDS=0,1,2
	$(PY) -m advdf.papers.reproduce table2 --scale $(SCALE) $(SEEDS_ARG) $(STAGE_ARGS) $(ARGS)

reproduce-table3: $(STAMP)  ## seed 001 Tables 3 and 2 (XAI maps + Detect-ResNet50 finetuned vs PGD/APGD/Square/NES); SCALE=smoke|paper DATA_SEEDS=0,1,2
	$(PY) -m advdf.papers.reproduce table3 --scale $(SCALE) $(SEEDS_ARG) $(STAGE_ARGS) $(ARGS)

reproduce-table4: $(STAMP)  ## seed 001 Tables 4 and 2 (Detect-ResNet50 head only; reuses table3's sets and maps); SCALE=smoke|paper DATA_SEEDS=0,1,2
	$(PY) -m advdf.papers.reproduce table4 --scale $(SCALE) $(SEEDS_ARG) $(STAGE_ARGS) $(ARGS)

reproduce-kra: $(STAMP)  ## seed 004 Tables 1-2 (Key Region Attack, white-box and transfer); SCALE=smoke|paper DATA_SEEDS=0,1,2
	$(PY) -m advdf.papers.reproduce kra --scale $(SCALE) $(SEEDS_ARG) $(STAGE_ARGS) $(ARGS)

reproduce-ffm: $(STAMP)  ## seed 002 Tables 1-4 (IAPs and UAPs on forensic autoencoders, transfer); SCALE=smoke|paper DATA_SEEDS=0,1,2
	$(PY) -m advdf.papers.reproduce ffm --scale $(SCALE) $(SEEDS_ARG) $(STAGE_ARGS) $(ARGS)

# smoke scale: 32 px generators run thousands of tiny ops, where a second intra-op thread only adds synchronization
reproduce-cdmaa: $(STAMP)  ## seed 003 Tables 1-4 (CDMAA vs StarGAN/AttGAN/STGAN/U-GAT-IT, ablations, JPEG/resize robustness, universal); SCALE=smoke|paper
	$(if $(filter smoke,$(SCALE)),OMP_NUM_THREADS=1) $(PY) -m advdf.papers.reproduce cdmaa --scale $(SCALE) $(STAGE_ARGS) $(ARGS)

bench-attacks: $(STAMP)  ## time each attack against torchattacks, ART and foolbox (the bench extra) on one model and batch (CPU or GPU)
	$(PY) -m benchmarks.bench_attacks $(ARGS)

bench-faces: $(STAMP)  ## face detectors (haar, dlib, mtcnn) on the synthetic FF++ tree: frames without a face, time per frame
	$(PY) -m benchmarks.bench_faces $(ARGS)

# Seed 002's subjective test end to end, in its own artifacts directory: a 2-epoch ClassNSeg and tiny CNN on a tiny
# synthetic tree, their IAP (smoke alpha, as reproduce-ffm), UAP, URN and PGD sets cached by attack.py, a DCR study of
# them (6 pairs per condition, sets of 8 + 1 attention check), served and rated by simulated evaluators in a headless
# chromium (screenshots /tmp/assess_page.png, /tmp/assess_phone.png), then the report.
ASSESS_DEMO := $(CURDIR)/artifacts/assess_demo
ASSESS_DATA := model.input_size=32 data.synthetic.num_videos=8 data.synthetic.num_frames=6 data.crop_size=32 \
	data.frames_per_video_real=6 data.frames_per_video_fake=2 data.batch_size=16 logger=none
.PHONY: assess-demo
assess-demo: $(STAMP)  ## seed 002's subjective test (DCR) on tiny smoke caches: build a study, serve it, rate it in a headless browser, print the report
	bash .ci/browser-install.sh
	rm -rf $(ASSESS_DEMO)/studies/demo
	set -e; export ADVDF_ARTIFACTS=$(ASSESS_DEMO) OMP_NUM_THREADS=1 WANDB_MODE=$${WANDB_MODE:-offline}; \
	$(PY) train.py task=ffm model=classnseg $(ASSESS_DATA) trainer.max_epochs=2 trainer.accelerator=cpu; \
	$(PY) train.py model=tiny_cnn $(ASSESS_DATA) trainer.max_epochs=2 trainer.accelerator=cpu; \
	$(PY) attack.py model=classnseg +data.manipulation=Face2Face $(ASSESS_DATA) attack=iap_cls attack.alpha=1000 \
		'checkpoint="$${advdf.detector:$${paths.ffm_prefix},null}"'; \
	$(PY) attack.py model=classnseg +data.manipulation=Face2Face $(ASSESS_DATA) attack=uap_overfire attack.sign=true \
		'checkpoint="$${advdf.detector:$${paths.ffm_prefix},null}"'; \
	$(PY) attack.py model=tiny_cnn $(ASSESS_DATA) attack=urn; \
	$(PY) attack.py model=tiny_cnn $(ASSESS_DATA) attack=pgd; \
	$(PY) assess.py build study=demo design.pairs_per_condition=6 design.pairs_per_set=8 \
		'sets={IAP:ffpp_synthetic/classnseg_*/iap_cls-*,UAP:ffpp_synthetic/classnseg_*/uap_overfire-*,URN:ffpp_synthetic/tiny_cnn_*/urn-*,PGD:ffpp_synthetic/tiny_cnn_*/pgd-*}'; \
	$(PY) -m tests.helpers.browser --study demo --evaluators 7 --sets 2; \
	$(PY) assess.py report study=demo

clean:  ## remove generated outputs (keeps .venv)
	rm -rf outputs multirun artifacts wandb .pytest_cache
