# Two commands do all the set-up: `make demo` (every notebook, headless) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test env browser clean bench bench-quick bench-lab bench-quality docs

# JupyterLab's settings for this environment: no pop-up asking to fetch Jupyter news, no update check.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json

env: $(STAMP) $(LAB_SETTINGS)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt torch torchvision
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

$(LAB_SETTINGS): etc/jupyterlab/overrides.json $(STAMP)
	mkdir -p $(dir $@) && cp $< $@

# A second `make demo` keeps the complete records; `make demo FORCE=1` runs every notebook again.
demo: env
	$(VENV)/bin/oneshot-lab demo --out runs/demo $(if $(FORCE),--force)

# The documentation site, offline, from the executed notebooks of `make demo` (runs/demo/, else results/; never
# executed here) -> build/docs/html/index.html, which opens from disk.
docs: $(STAMP)
	$(PY) -m oneshot_lab.bench.docs_site

# The browser tests drive Debian's chromium (never a browser download): installed once, as root, if it is missing.
# Failing to install does not stop the suite: tests/test_browser.py then fails and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
		|| echo "make browser: could not install Debian's chromium; the browser tests will fail" >&2

test: env browser
	$(PY) -m pytest -n 3 --dist worksteal -q

# Benchmarks against the peers; results in benchmarks/results/, then the README's Performance section.
bench: $(STAMP)
	$(PY) -m oneshot_lab.bench training global_prune second_order inference readme

bench-quick: $(STAMP)
	$(PY) -m oneshot_lab.bench --quick

# Slow: wall time of every notebook (smoke), make demo and the tests; then the README section again.
bench-lab: $(STAMP)
	$(PY) -m oneshot_lab.bench lab readme

# Pruning-quality table from a sweep spec (SPEC=sweeps/....yaml), summarised over seeds.
SPEC ?= sweeps/compare_criteria.yaml
bench-quality: $(STAMP)
	$(PY) -m oneshot_lab.bench quality readme --spec $(SPEC)

clean:
	rm -rf $(VENV) runs build .pytest_cache
