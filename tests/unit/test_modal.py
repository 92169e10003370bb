"""modal/*.py, imported offline: each manifest asks Modal for the intended GPU, volumes,
secrets and endpoint, and the bot's serves the very app the local server builds.

Nothing here talks to Modal: defining an App, Images, Volumes and Secrets is lazy, and
deploying is what would contact it. The Modal client keeps what a decorator was given in
private attributes, so the tests record the public decorator calls themselves (wrapping
`App.function`, `modal.concurrent`, `modal.web_server`, `modal.asgi_app`, `Volume.from_name`
and `Secret.from_name`) while the real ones still run.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

modal = pytest.importorskip("modal")

from tests.support import ROOT  # noqa: E402

MODAL_DIR = ROOT / "modal"


@dataclass
class Recorded:
    """What one Modal function was declared with."""

    function: dict[str, Any]
    decorators: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Manifest:
    module: ModuleType
    functions: dict[int, Recorded]
    names: dict[int, str]  # id(Volume or Secret) -> the name it was looked up by

    def of(self, function: Any) -> Recorded:
        return self.functions[id(function)]

    def named(self, objects: Any) -> list[str]:
        return sorted(self.names[id(obj)] for obj in objects)


@pytest.fixture
def load_manifest(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # No token or config file is needed to import; keep any local one out of the way.
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(ROOT / "nonexistent-modal.toml"))
    for name in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    functions: dict[int, Recorded] = {}
    names: dict[int, str] = {}
    pending: dict[str, dict[str, Any]] = {}

    def recording_decorator(name: str, original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            decorate = original(*args, **kwargs)

            def apply(target: Any) -> Any:
                pending[name] = {"args": args, **kwargs}
                return decorate(target)

            return apply

        return wrapper

    for name in ("concurrent", "web_server", "asgi_app"):
        monkeypatch.setattr(modal, name, recording_decorator(name, getattr(modal, name)))

    original_function = modal.App.function

    def function(self: Any, *args: Any, **kwargs: Any) -> Any:
        decorate = original_function(self, *args, **kwargs)

        def apply(target: Any) -> Any:
            result = decorate(target)
            functions[id(result)] = Recorded(kwargs, dict(pending))
            pending.clear()
            return result

        return apply

    monkeypatch.setattr(modal.App, "function", function)

    for cls in (modal.Volume, modal.Secret):
        original = cls.from_name

        def from_name(name: str, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            obj = _original(name, *args, **kwargs)
            names[id(obj)] = name
            return obj

        monkeypatch.setattr(cls, "from_name", from_name)

    loaded: list[str] = []

    def load(stem: str) -> Manifest:
        module_name = f"_modal_manifest_{stem}"
        spec = importlib.util.spec_from_file_location(module_name, MODAL_DIR / f"{stem}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        loaded.append(module_name)
        spec.loader.exec_module(module)
        return Manifest(module, functions, names)

    yield load
    for module_name in loaded:
        sys.modules.pop(module_name, None)


def test_vllm_on_an_a10g_with_cached_weights_and_an_api_key(load_manifest: Any) -> None:
    manifest = load_manifest("vllm_app")
    module = manifest.module
    assert isinstance(module.app, modal.App)
    assert module.app.name == "voice-kit-llm"
    serve = manifest.of(module.serve)
    assert serve.function["gpu"] == "A10G"
    assert manifest.named(serve.function["volumes"].values()) == [
        "voice-kit-hf-cache",
        "voice-kit-vllm-cache",
    ]
    assert manifest.named(serve.function["secrets"]) == [
        "voice-kit-huggingface",
        "voice-kit-llm-key",
    ]
    assert serve.function["scaledown_window"] >= 5 * 60
    assert serve.decorators["web_server"]["port"] == module.PORT
    assert serve.decorators["web_server"]["startup_timeout"] >= 10 * 60
    assert serve.decorators["concurrent"]["max_inputs"] > 1

    command = module.vllm_command("secret-key", enforce_eager=False)
    assert command[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct"]
    assert command[command.index("--max-model-len") + 1] == "8192"
    assert command[command.index("--api-key") + 1] == "secret-key"
    assert command[command.index("--port") + 1] == str(module.PORT)
    assert "--enforce-eager" not in command
    assert "--enforce-eager" in module.vllm_command("k", enforce_eager=True)


def test_eager_mode_is_an_explicit_choice(load_manifest: Any, monkeypatch: Any) -> None:
    assert load_manifest("vllm_app").module.ENFORCE_EAGER is False  # the documented default
    monkeypatch.setenv("VLLM_ENFORCE_EAGER", "1")
    module = load_manifest("vllm_app").module
    assert module.ENFORCE_EAGER is True
    assert "--enforce-eager" in module.vllm_command("k")


def test_tts_server_on_a_t4_as_an_asgi_app(load_manifest: Any) -> None:
    manifest = load_manifest("xtts_app")
    module = manifest.module
    assert module.app.name == "voice-kit-tts"
    web = manifest.of(module.web)
    assert web.function["gpu"] == "T4"
    assert "asgi_app" in web.decorators
    assert web.function["scaledown_window"] >= 60
    source = (MODAL_DIR / "xtts_app.py").read_text()
    # Weights baked at build, with the licence accepted in the open; deps from uv.lock.
    assert '"COQUI_TOS_AGREED": "1"' in source
    assert "coqui/XTTS-v2" in module.DOWNLOAD_XTTS
    assert module.MODEL_DIR in module.DOWNLOAD_XTTS
    assert 'uv_sync(extras=["tts", "xtts"]' in source


def test_bot_on_a_t4_with_warm_concurrent_containers(load_manifest: Any) -> None:
    manifest = load_manifest("bot_app")
    module = manifest.module
    assert module.app.name == "voice-kit-bot"
    web = manifest.of(module.web)
    assert web.function["gpu"] == "T4"
    assert "asgi_app" in web.decorators
    assert web.function["scaledown_window"] >= 60
    # Sized from the measured cost of a call: a talking call's share of a core (docs/scaling.md)
    # for each call the container takes, one core more, and no call past them.
    calls = module.CALLS_PER_CONTAINER
    assert module.CORES_PER_CALL >= 0.272  # the highest talking figure measured
    assert web.function["cpu"] == pytest.approx(calls * module.CORES_PER_CALL + 1.0)
    assert web.decorators["concurrent"]["target_inputs"] == calls
    assert web.decorators["concurrent"]["max_inputs"] == calls + module.SPARE_INPUTS
    assert '"BOT_MAX_CALLS": str(CALLS_PER_CONTAINER)' in (MODAL_DIR / "bot_app.py").read_text()
    assert manifest.named(web.function["secrets"]) == ["voice-kit-bot", "voice-kit-llm-key"]
    source = (MODAL_DIR / "bot_app.py").read_text()
    assert 'uv_sync(extras=["bot"]' in source
    assert module.WHISPER_MODEL == "large-v3-turbo"


def test_bot_serves_the_same_app_as_the_local_server(load_manifest: Any) -> None:
    pytest.importorskip("pipecat")
    from fastapi import FastAPI

    import bot.app
    from bot.config import load_settings

    module = load_manifest("bot_app").module
    settings = load_settings(
        llm_base_url="http://llm.example/v1", xtts_base_url="http://tts.example"
    )

    def flat(routes: list) -> list:
        # An included router may be kept as one entry (FastAPI's _IncludedRouter): its own.
        return [
            leaf
            for route in routes
            for leaf in (
                flat(route.original_router.routes) if hasattr(route, "original_router") else [route]
            )
        ]

    def routes(app: FastAPI) -> set[tuple[str, str, frozenset[str]]]:
        return {
            (
                type(route).__name__,
                str(getattr(route, "path", "")),
                frozenset(getattr(route, "methods", None) or ()),
            )
            for route in flat(app.routes)
        }

    served = module.build_app(settings)
    assert isinstance(served, FastAPI)
    assert routes(served) == routes(bot.app.create_app(settings))
    assert ("APIRoute", "/", frozenset({"GET"})) in routes(served)
    # Built from the settings it was given, not from the environment's.
    assert served.state.calls.settings is settings


def test_bot_finds_the_services_from_the_environment(
    load_manifest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_manifest("bot_app").module
    monkeypatch.setenv("LLM_BASE_URL", "https://llm.example/v1")
    monkeypatch.setenv("XTTS_BASE_URL", "https://tts.example")
    # Both set: no lookup of the deployed apps (which would need Modal).
    assert module.service_urls() == {}
