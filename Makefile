# Convenience targets; the README's two commands are the reference.
PY ?= python3.11

.PHONY: demo test test-xla

demo:
	$(PY) -m venv .venv && .venv/bin/pip install -r requirements.txt -e . && .venv/bin/python train.py

test:
	$(PY) -m venv .venv && .venv/bin/pip install -r requirements-test.txt -e . && .venv/bin/pip install --no-build-isolation seqeval==1.2.2 && .venv/bin/python -m pytest -m "not slow"

# The TPU path on torch-xla's CPU device, in its own environment (torch-xla pins torch 2.9; several GB).
test-xla:
	$(PY) -m venv .venv-xla && .venv-xla/bin/pip install -r requirements-xla-cpu.txt -e . && \
	PJRT_DEVICE=CPU .venv-xla/bin/python -m pytest -m xla tests/test_xla.py -s
