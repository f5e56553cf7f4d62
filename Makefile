# Two entry points for a fresh Debian machine (run as root, or with sudo for apt-get):
#   make run    installs everything and starts the app on http://127.0.0.1:7860
#   make test   installs everything and runs the whole test suite (what CI runs)
PY ?= python3
VENV := .venv
APT_PACKAGES := chromium chromium-driver espeak-ng sox ffmpeg

.PHONY: run test install system-deps

system-deps:
	@command -v espeak-ng >/dev/null && command -v chromium >/dev/null && command -v ffmpeg >/dev/null || \
	  (echo "Installing system packages: $(APT_PACKAGES)" && apt-get update -qq && \
	   DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(APT_PACKAGES))

# pip is not silenced: the first install takes minutes (torch alone is large), and its progress
# is what tells a newcomer that something is happening.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "Installing VoxSpace's Python packages into $(VENV) (first time: several minutes)"
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install --progress-bar on -r requirements-dev.txt
	touch $@

install: system-deps $(VENV)/.installed

run: install
	$(VENV)/bin/python app.py

# pytest exits 5 when it collected no test: that is a broken suite, never a pass.
test: install
	@$(VENV)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc
