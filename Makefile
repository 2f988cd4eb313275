# maia: two commands on a fresh Debian machine with Python 3.11.
#   make demo   install everything, compose maia's works for the gallery, start the playground on http://127.0.0.1:7860
#   make test   install everything and run the whole test suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install sysdeps lint bench data train clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "maia needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Python writes a module's bytecode into the venv the first time it is imported, even where the machine sets
# PYTHONDONTWRITEBYTECODE: only what runs is compiled, once, instead of every installed file at install time.
unexport PYTHONDONTWRITEBYTECODE

# uv installs the same pins as pip: 10 s for a fresh clone's make install on 2 cores (43 s compiling every file),
# pip 87 s. It reads no pip.conf, so pip's find-links (where a machine keeps its torch wheel) is passed on; if uv
# cannot be had, pip does it all.
UV := uv==0.13.10
$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	links="$${PIP_FIND_LINKS:-$$($(BIN)/pip config get global.find-links 2>/dev/null)}"; \
	  { $(BIN)/pip install -q "$(UV)" && $(BIN)/uv pip install -q --python $(BIN)/python \
	      $${links:+--find-links "$$links"} -r requirements.txt -r requirements-dev.txt; } \
	  || $(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	touch $@

install: $(STAMP)

demo: install
	@scripts/sysdeps.sh audio
	-$(BIN)/python -m maia gallery seed  # a gallery that cannot be used is one line; the page starts anyway
	$(BIN)/python app.py

# While apt-get still installs the Debian packages (a new machine's chromium), the bytecode of what the tests import
# is written, once, by scripts/warm_bytecode.py, instead of by each of the many processes that the tests start at once;
# it stops when apt-get is done, and never starts where the packages were there already.
# pytest-xdist runs one worker more than the cores: the worker with the app server's tests (the browser's) waits on the
# server and chromium for part of its time, which the third worker of two cores fills (docs/testing.md, Run 14).
test:  # the Debian packages install while the Python ones do (apt-get mostly waits on the network and dpkg)
	@scripts/sysdeps.sh audio browser & debs=$$!; $(MAKE) --no-print-directory install; ok=$$?; \
	  if [ $$ok = 0 ] && kill -0 $$debs 2>/dev/null; then \
	    $(BIN)/python scripts/warm_bytecode.py & warm=$$!; wait $$debs; kill $$warm 2>/dev/null; fi; wait; exit $$ok
	$(BIN)/python -m pytest -n $$(( $$(nproc) + 1 )) --durations=25  # the 25 slowest shown (docs/testing.md)

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/pip install -q -r requirements-bench.txt
	mkdir -p bench/results
	$(BIN)/python -m bench.encoding --json bench/results/encoding.json | tee bench/results/encoding.txt
	$(BIN)/python -m bench.training --threads 2 | tee bench/results/training.txt
	$(BIN)/python -m bench.train_step | tee bench/results/train_step.txt
	$(BIN)/python -m bench.generate --threads 2 | tee bench/results/generate.txt
	$(BIN)/python -m bench.attention | tee bench/results/attention.txt
	$(BIN)/python -m bench.app_latency | tee bench/results/app_latency.txt
	$(BIN)/python -m bench.load | tee bench/results/load.txt
	$(BIN)/python -m bench.memory | tee bench/results/memory.txt
	$(BIN)/python -m bench.soak | tee bench/results/soak.txt

data: install
	$(BIN)/python -m training.prepare --source music21 --out data/music21

train: data
	$(BIN)/python -m training.train --config training/configs/gpt.toml

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
