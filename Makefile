# pvrnn: `make demo` runs the main job on a bundled example, `make test` runs the checks.
# Both create .venv on first use. torch is pinned here only (pyproject declares a range).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench results notebooks clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,plot,bench,notebooks]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pvrnn demo

test: $(STAMP)
	$(BIN)/ruff check pvrnn tests benchmarks
	$(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check pvrnn tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_accuracy.py
	$(BIN)/python benchmarks/bench_vocoder.py
	$(BIN)/python benchmarks/bench_model.py
	$(BIN)/python benchmarks/bench_transforms.py

# Every README Results figure that a script prints (the table names the command per row), at
# settings that finish in about 5 minutes on 2 cores; the notebook rows come from make notebooks.
results: $(STAMP)
	$(BIN)/python benchmarks/bench_accuracy.py
	$(BIN)/python benchmarks/bench_vocoder.py --repeats 3
	$(BIN)/python benchmarks/bench_transforms.py --seconds 4 --timing-seconds 10 --threads 1
	$(BIN)/python benchmarks/bench_model.py --skip-plateau --repeats 1 --threads 1

notebooks: $(STAMP)
	$(BIN)/python notebooks/execute.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
