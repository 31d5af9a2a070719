# gpuctk developer entry points. `make demo` and `make test` work on a fresh machine:
# they create .venv and install the package (with dev extras) when needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEB_PACKAGES := runc podman containerd busybox-static uidmap docker.io strace

.PHONY: demo test test-unit bench lint venv debs preload clean

# the sh front ends are copied into the venv at install (hatchling shared-scripts): reinstall on change
$(STAMP): pyproject.toml src/gpuctk/runtime/scripts/gpuctk-runtime src/gpuctk/hooks/scripts/gpuctk-hook
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e '.[dev,k8s]'
	@touch $(STAMP)

venv: $(STAMP)

# the per-container processes' modules as one bundle (gpuctk._preload); sources change while
# developing, so every run that starts them rebuilds it (a stale bundle is ignored, never wrong)
preload: $(STAMP)
	@$(PY) -m gpuctk.install.preload

# As root, install the Debian packages the integration tests use (only the missing ones).
debs:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	fi

# As root, the demo first installs what its container step needs (the Debian packages below, only
# the missing ones, through `debs`); without root the demo says what to install.
DEMO_DEB_PACKAGES := runc busybox-static

demo: $(STAMP) preload
	@$(MAKE) --no-print-directory debs DEB_PACKAGES="$(DEMO_DEB_PACKAGES)"
	@$(PY) -m gpuctk.sim.demo

test: $(STAMP) debs preload
	$(PY) -m pytest -q -p no:cacheprovider tests

test-unit: $(STAMP) preload
	$(PY) -m pytest -q -p no:cacheprovider -m 'not integration' tests

bench: $(STAMP) debs preload
	$(PY) benchmarks/run.py

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m mypy

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
