# Two entry points do all set-up on a fresh Debian/Ubuntu machine:
#   make run    install, then serve the web app with the shipped model on http://127.0.0.1:5000
#   make test   install (Debian packages for Chromium and Qt too), then lint and run the test suite
#   make test-fast   lint and the tests not marked slow, browser, gui or needs_fer2013 (about a minute)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages: Chromium for the browser test; the libraries Qt's platform plugins load (offscreen, and xcb
# for a real X display: a minimal Debian lacks libxcb-icccm4 and libxcb-keysyms1, and Qt then aborts); Xvfb, the
# X server tests/test_desktop_x11.py runs the desktop app on. npm is installed only where no npm runs: Debian's npm
# package conflicts with a Node.js from NodeSource, which carries its own npm, and apt then refuses the whole install.
DEBIAN_DESKTOP_PACKAGES := libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0 \
	libxcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
	libxcb-shape0 libxcb-xkb1
DEBIAN_TEST_PACKAGES := chromium fonts-liberation fonts-dejavu-core xvfb $(DEBIAN_DESKTOP_PACKAGES)
# axe-core, the accessibility checker the browser test injects into the pages (node_modules/, not committed).
AXE_CORE := axe-core@4.14.1
# ONNX Runtime Web, which runs the models in the live page's private mode and in `emorec export-web` sites: the
# npm package's WebAssembly build, copied into the package's static files (not committed; docs/private_mode.md).
ORT_WEB := onnxruntime-web@1.31.1
ORT_WEB_DIR := src/emorec/web/static/ort
# face-api.js's expression model, a peer that tools/faceapi_soft_labels.py converts to compare with and learn from
# (training only; tests/test_peer_faceapi.py checks the conversion on real faces; docs/models.md).
FACE_API := @vladmandic/face-api@1.7.15
# One npm install for all: an install with --no-save removes the packages it does not name.
NPM_PACKAGES := $(AXE_CORE) $(ORT_WEB) $(FACE_API)

.PHONY: run test test-fast install install-test debian-test-packages web-ort

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e ".[web]"
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory web-ort; \
	else echo "npm not found: the live page runs in server mode only (install npm, then make web-ort)"; fi

# The files of ONNX Runtime Web the page loads (emorec.browser.ORT_WEB_FILES; its LICENSE is committed there).
web-ort:
	npm install --no-save --no-package-lock --no-audit --no-fund $(NPM_PACKAGES)
	cp node_modules/onnxruntime-web/dist/ort.wasm.min.js node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.mjs \
		node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm $(ORT_WEB_DIR)/

run: install
	$(BIN)/emorec serve

debian-test-packages:
	@missing=$$(for p in $(DEBIAN_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# torch==2.13.0 is a CPU build from local disk; any other spec would pull gigabytes of CUDA packages.
install-test: $(BIN)/python debian-test-packages
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[train,web,desktop,batch,test]"
	$(MAKE) --no-print-directory web-ort

test: install-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q

# For a newcomer's edit-run loop: no install step, no training runs, servers, browser, windows or FER2013.
test-fast:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q -m "not slow and not browser and not gui and not needs_fer2013"
