# GeoAnomaly — the two commands of the README are `make demo` and `make test`;
# each sets up what it needs on a fresh Debian 12 machine.

SYSTEM_PYTHON ?= /usr/bin/python3
VENV          ?= .venv
PY            := $(VENV)/bin/python
STAMP         := $(VENV)/.geoanomaly-setup
DEMO_OUT      ?= demo_output
DEMO_METHOD   ?= mahalanobis
DEMO_COMMODITY ?= Au
# Debian packages: QGIS bindings + providers, the desktop app and a virtual
# screen for the desktop test, pdftoppm for the map-export test.
APT_PACKAGES  := python3-qgis qgis-providers qgis xvfb xauth poppler-utils python3-venv
export QT_QPA_PLATFORM ?= offscreen
QGIS_PROFILE       ?= default
QGIS_PROFILES_PATH ?=

.PHONY: setup test demo bench lint package install-plugin clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@if ! $(SYSTEM_PYTHON) -c "import qgis.core" >/dev/null 2>&1 || ! command -v xvfb-run >/dev/null || ! command -v pdftoppm >/dev/null || ! command -v qgis >/dev/null || ! $(SYSTEM_PYTHON) -c "import ensurepip" >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian packages: $(APT_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  else \
	    echo "warning: cannot install $(APT_PACKAGES) (not root); QGIS tests will be skipped"; \
	  fi; \
	fi
	@test -x $(PY) || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

test: setup
	$(PY) -m pytest -q -ra tests

demo: setup
	$(VENV)/bin/geoanomaly detect --method $(DEMO_METHOD) --commodity $(DEMO_COMMODITY) --overwrite \
	  --samples resources/sample_data/samples.csv --deposits resources/sample_data/deposits.csv \
	  --out $(DEMO_OUT)
	@echo "Demo outputs are in $(abspath $(DEMO_OUT)):"
	@ls -1 $(DEMO_OUT)

bench: setup
	@mkdir -p bench_output
	@for script in tests/benchmarks/bench_*.py; do \
	  echo "== $$script"; $(PY) $$script || exit 1; \
	done
	@echo "Benchmark figures are in $(abspath bench_output)"

lint: setup
	$(VENV)/bin/ruff check core geoanomaly_qgis tests

package:
	$(SYSTEM_PYTHON) resources/tools/package_plugin.py --out dist/geoanomaly_qgis.zip

install-plugin: setup
	$(PY) resources/tools/install_plugin.py --profile $(QGIS_PROFILE) $(if $(QGIS_PROFILES_PATH),--profiles-path $(QGIS_PROFILES_PATH))

clean:
	rm -rf $(VENV) build dist *.egg-info $(DEMO_OUT) bench_output test-artifacts .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
