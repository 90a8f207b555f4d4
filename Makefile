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

.PHONY: install test test-fast lint reproduce-table1 reproduce-table2 reproduce-table3 reproduce-table4 reproduce-kra \
	reproduce-ffm reproduce-cdmaa \
	bench-attacks bench-faces clean help

help:  ## list targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,bench,faces]"
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
	$(PY) -m advdf.papers.reproduce table1 --scale $(SCALE) $(SEEDS_ARG) $(ARGS)

reproduce-table2: $(STAMP)  ## seed 000 Table 2 (9 detectors x 7 attacks x 11 defenses, denoisers trained) + adaptive grid; SCALE=smoke|paper DATA_SEEDS=0,1,2
	$(PY) -m advdf.papers.reproduce table2 --scale $(SCALE) $(SEEDS_ARG) $(ARGS)

reproduce-table3: $(STAMP)  ## seed 001 Tables 3 and 2 (XAI maps + Detect-ResNet50 finetuned vs PGD/APGD/Square/NES); SCALE=smoke|paper DATA_SEEDS=0,1,2
	$(PY) -m advdf.papers.reproduce table3 --scale $(SCALE) $(SEEDS_ARG) $(ARGS)

reproduce-table4: $(STAMP)  ## seed 001 Tables 4 and 2 (Detect-ResNet50 head only; reuses table3's sets and maps); SCALE=smoke|paper DATA_SEEDS=0,1,2
	$(PY) -m advdf.papers.reproduce table4 --scale $(SCALE) $(SEEDS_ARG) $(ARGS)

reproduce-kra: $(STAMP)  ## seed 004 Tables 1-2 (Key Region Attack, white-box and transfer); SCALE=smoke|paper DATA_SEEDS=0,1,2
	$(PY) -m advdf.papers.reproduce kra --scale $(SCALE) $(SEEDS_ARG) $(ARGS)

reproduce-ffm: $(STAMP)  ## seed 002 Tables 1-4 (IAPs and UAPs on forensic autoencoders, transfer); SCALE=smoke|paper DATA_SEEDS=0,1,2
	$(PY) -m advdf.papers.reproduce ffm --scale $(SCALE) $(SEEDS_ARG) $(ARGS)

# smoke scale: 32 px generators run thousands of tiny ops, where a second intra-op thread only adds synchronization
reproduce-cdmaa: $(STAMP)  ## seed 003 Tables 1-4 (CDMAA vs StarGAN/AttGAN/STGAN/U-GAT-IT, ablations, JPEG/resize robustness, universal); SCALE=smoke|paper
	$(if $(filter smoke,$(SCALE)),OMP_NUM_THREADS=1) $(PY) -m advdf.papers.reproduce cdmaa --scale $(SCALE) $(ARGS)

bench-attacks: $(STAMP)  ## time each attack against torchattacks, ART and foolbox (the bench extra) on one model and batch (CPU or GPU)
	$(PY) -m benchmarks.bench_attacks $(ARGS)

bench-faces: $(STAMP)  ## face detectors (haar, dlib, mtcnn) on the synthetic FF++ tree: frames without a face, time per frame
	$(PY) -m benchmarks.bench_faces $(ARGS)

clean:  ## remove generated outputs (keeps .venv)
	rm -rf outputs multirun artifacts wandb .pytest_cache
