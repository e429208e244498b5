# The two README commands: `make quickstart` (train on the embedded toy dataset) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OASIS := $(VENV)/bin/oasis
# CPU build by default; on a GPU machine: make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
DATA ?= data/toy
RUN ?= runs/toy
# `oasis train` flags of the quickstart: the toy preset's 1200 iterations take about 10 minutes on
# 2 CPU cores; `make quickstart QUICKSTART_FLAGS="--iters 6000"` continues the same run further.
QUICKSTART_FLAGS ?= --num-workers 1

.PHONY: setup quickstart streets test test-fast bench clean

setup: $(VENV)/.installed

# torch is installed first and pinned, so that pip never resolves an unpinned (CUDA) torch.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# Toy data (+ 3 more looks of each val label map) -> CPU training (resumes when run again) ->
# the reference segmenter (once) -> quality figures -> a few synthesised images.
quickstart: setup
	$(OASIS) data toy --out $(DATA) --appearances 4
	$(OASIS) train --preset toy --data-root $(DATA) --out $(RUN) --resume $(QUICKSTART_FLAGS)
	test -f $(DATA)/reference_segmenter.pt || $(OASIS) segmenter train --preset toy --data-root $(DATA)
	$(OASIS) evaluate --checkpoint $(RUN)/checkpoints/latest.ckpt --data-root $(DATA) \
		--metrics miou,spread,fsd --samples 4 --out $(RUN)/eval.json --no-progress
	rm -rf $(RUN)/demo_labels && mkdir -p $(RUN)/demo_labels
	cp $$(ls $(DATA)/val/labels/*.png | head -n 6) $(RUN)/demo_labels/
	$(OASIS) synthesize --checkpoint $(RUN)/checkpoints/latest.ckpt --labels $(RUN)/demo_labels \
		--out $(RUN)/synthesized --samples 3
	@echo
	@echo "done: sample grids in $(RUN)/samples, model $(RUN)/checkpoints/latest.ckpt,"
	@echo "      synthesised images in $(RUN)/synthesized, figures in $(RUN)/eval.json"
	@echo "      (tensorboard --logdir $(RUN)/tb)"

# Street scenes from the CamVid model that ships in the package: no data, no download, no training.
streets: setup
	$(OASIS) synthesize --checkpoint camvid --examples 6 --out out/camvid --samples 3
	@echo "street scenes in out/camvid (*_grid.png: label | 3 noises)"

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
