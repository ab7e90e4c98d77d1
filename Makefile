# chatter: `make run` serves the app on SQLite with everything set up; `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
# The client's address is the connection's own: forwarded headers are trusted only from the
# reverse proxies named here (comma-separated addresses), e.g. make run FORWARDED_ALLOW_IPS=10.0.0.5
FORWARDED_ALLOW_IPS ?=
PROXY_FLAGS = $(if $(strip $(FORWARDED_ALLOW_IPS)),--proxy-headers --forwarded-allow-ips=$(FORWARDED_ALLOW_IPS),--no-proxy-headers)

# The first interpreter found that is Python 3.12 or newer (Django 6.1 needs it).
# .python-version names 3.12 for pyenv; PYTHON=/path/to/python3.x overrides the search.
PYTHON ?= $(shell for p in python3.12 python3.13 python3.14 python3 \
	$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { command -v $$p; break; }; done)

.PHONY: run test test-unit test-browser setup admin clean vendor mutants

run: setup
	$(PY) manage.py migrate --no-input -v 0
	$(PY) manage.py collectstatic --no-input -v 0
	$(PY) manage.py seed_models
	@echo ""
	@echo "  chatter is running at http://$(HOST):$(PORT)/"
	@echo "  First admin: run '$(PY) manage.py createsuperuser' (or 'make admin') in another terminal."
	@echo ""
	$(VENV)/bin/uvicorn chatter.asgi:application --host $(HOST) --port $(PORT) --workers $(WORKERS) $(PROXY_FLAGS) --lifespan off --no-access-log

admin: setup
	$(PY) manage.py createsuperuser

test: test-unit test-browser

test-unit: setup
	$(VENV)/bin/pytest -m "not browser"

# Browser tests run in their own pytest process: Playwright's sync API and async tests clash.
test-browser: setup
	$(VENV)/bin/pytest -m browser

# Mutation testing (not in CI: it takes long). mutmut changes the rule modules one small change at a
# time and runs the unit tests that call the changed function; each change they do not notice
# is listed as survived. Settings in setup.cfg [mutmut]; how to read the list: docs/mutants.md.
# The default modules take about 20 minutes here; pick others (docs/mutants.md lists them) with e.g.
# make mutants MODULES="conversations/forms.py conversations/models.py"
MUTMUT_VERSION := 3.8.1
MODULES ?= accounts/validators.py aimodels/validators.py accounts/forms.py aimodels/forms.py accounts/models.py conversations/context.py
# Mutants run at once (mutmut's default: one per core). The reply job's wait more than they compute
# (a mutant that breaks a reply's end makes each test wait for its deadline): more pay there.
CHILDREN ?= $(shell nproc)
MUTANT_NAMES = $(foreach m,$(MODULES),'$(subst /,.,$(m:.py=)).*')
MUTANT_PREFIXES = $(subst $(eval) ,|,$(foreach m,$(MODULES),$(subst .,\.,$(subst /,.,$(m:.py=)))))

mutants: setup
	@$(PY) -c 'import importlib.metadata as m, sys; sys.exit(m.version("mutmut") != "$(MUTMUT_VERSION)")' 2>/dev/null \
		|| $(VENV)/bin/pip install -q mutmut==$(MUTMUT_VERSION)
	@echo "mutmut over $(MODULES) (progress: mutants/run.log)"
	@mkdir -p mutants && start=$$(date +%s) \
	&& { CHATTER_ENV_FILE=$(CURDIR)/.env TIKTOKEN_CACHE_DIR=$(CURDIR)/.cache/tiktoken \
		$(VENV)/bin/mutmut run --max-children $(CHILDREN) $(MUTANT_NAMES) > mutants/run.log 2>&1 \
		|| { tr '\r' '\n' < mutants/run.log | tail -40; echo "mutmut failed (see mutants/run.log)"; exit 1; }; } \
	&& $(VENV)/bin/mutmut results | grep -E "^ +($(MUTANT_PREFIXES))\." > mutants/survivors.txt; \
	cat mutants/survivors.txt; \
	echo "$$(grep -c ': survived' mutants/survivors.txt) survived, $$(grep -vc ': survived' mutants/survivors.txt) other (not killed)" \
		"in $$(( ($$(date +%s) - start) / 60 )) min; see a mutant's change: $(VENV)/bin/mutmut show <name>"

setup: $(VENV)/.installed .env

$(VENV)/.installed: requirements.txt
	@test -n "$(PYTHON)" || { echo "chatter needs Python 3.12 or newer (Django 6.1), and none was found."; \
		echo "Install Python 3.12+ (e.g. 'pyenv install 3.12'), or run: make PYTHON=/path/to/python3.12"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || { \
		echo "$(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); chatter needs 3.12 or newer (Django 6.1)."; exit 1; }
	@test -x $(PY) || { echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

.env:
	@sed "s|^SECRET_KEY=.*|SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')|" .env.example > .env
	@echo "Wrote .env with a new SECRET_KEY (edit it to configure chatter)."

clean:
	rm -rf $(VENV) staticfiles

# Re-vendor htmx from the npm registry: make vendor HTMX=2.0.11 SSE=2.2.4
vendor:
	@test -n "$(HTMX)" -a -n "$(SSE)" || { echo "usage: make vendor HTMX=2.x.y SSE=2.x.y"; exit 1; }
	cd $$(mktemp -d) && npm pack --silent htmx.org@$(HTMX) htmx-ext-sse@$(SSE) \
	  && tar xzf htmx.org-$(HTMX).tgz && cp package/dist/htmx.min.js $(CURDIR)/static/vendor/htmx/htmx-$(HTMX).min.js \
	  && rm -rf package && tar xzf htmx-ext-sse-$(SSE).tgz && cp package/dist/sse.min.js $(CURDIR)/static/vendor/htmx/sse-$(SSE).min.js
