# citynode: `make demo` shows it working, `make test` proves it.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
OUT     := build

.PHONY: setup broker test test-stress fuzz demo bench score-real lint clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# The MQTT tests start their own Mosquitto (Debian's package) on a free
# loopback port: install it when missing and possible, or say how.
broker:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null; } || \
	  { echo "make test needs Mosquitto: sudo apt-get install mosquitto"; exit 1; }

test: setup broker
	$(PY) -m pytest -q

# The suite beside two processes that keep both cores busy, as on a CI
# machine shared with other work: no test may lean on a wall-clock window.
test-stress: setup broker
	@yes > /dev/null & a=$$!; yes > /dev/null & b=$$!; trap 'kill $$a $$b 2>/dev/null; wait' EXIT INT TERM; \
	  $(PY) -m pytest -q

# The fuzz tests (tests/test_fuzz_*.py) with ten times the suite's random
# inputs: every parser of outside input accepts or refuses in one line.
fuzz: setup broker
	FUZZ_EXAMPLES=20000 $(PY) -m pytest -q tests/test_fuzz_*.py

demo: setup
	$(VENV)/bin/citynode demo --out $(OUT)/demo

bench: setup broker
	$(PY) -m host_tools.bench.core
	$(PY) -m host_tools.bench.node
	$(PY) -m host_tools.bench.core --real

# Real street floods (FloodNet, New York City) imported and replayed: needs
# ../shared/data/floodnet-dev.csv beside the checkout, else says so.
score-real: setup
	$(PY) -m host_tools.bench.core --real

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .hypothesis
