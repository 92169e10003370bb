"""modal/*.py, imported offline: each manifest asks Modal for the intended GPU, volumes,
secrets and endpoint, and the bot's serves the very app the local server builds.

Nothing here talks to Modal: defining an App, Images, Volumes and Secrets is lazy, and
deploying is what would contact it. The Modal client keeps what a decorator was given, and how
an Image was built, in private attributes, so the tests record the public calls themselves
(wrapping `App.function`, `modal.concurrent`, `modal.web_server`, `modal.asgi_app`,
`Volume.from_name`, `Secret.from_name` and every Image builder method) while the real ones still
run. A build step's command is run here, its downloads faked (tests/support/builds.py).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FunctionType, ModuleType
from typing import Any

import pytest

modal = pytest.importorskip("modal")

from tests.support import ROOT  # noqa: E402
from tests.support.builds import FakedBuild  # noqa: E402
from tests.support.manifests import imported_manifest  # noqa: E402


@dataclass
class Recorded:
    """What one Modal function was declared with."""

    function: dict[str, Any]
    decorators: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Step:
    """One Image builder call: `Image.env({...})`, `.uv_sync(extras=[...])` and the like."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class Manifest:
    module: ModuleType
    functions: dict[int, Recorded]
    names: dict[int, str]  # id(Volume or Secret) -> the name it was looked up by
    images: dict[int, tuple[Any, list[Step]]]  # id(Image) -> it, and the calls that built it

    def of(self, function: Any) -> Recorded:
        return self.functions[id(function)]

    def named(self, objects: Any) -> list[str]:
        return sorted(self.names[id(obj)] for obj in objects)

    def built(self, image: Any) -> list[Step]:
        """How `image` was built: its builder calls, in order, from the base image on."""
        return self.images[id(image)][1]


def steps(built: list[Step], method: str) -> list[Step]:
    return [step for step in built if step.method == method]


def environment(built: list[Step]) -> dict[str, str]:
    """The variables the image's `env` steps set, as the container sees them."""
    variables: dict[str, str] = {}
    for step in steps(built, "env"):
        variables.update(step.args[0])
    return variables


def run_command(command: str, tmp_path: Any, **fakes: str) -> FakedBuild:
    """A `run_commands` step run here as the image runs it (`sh -c`), with each module of
    `fakes` (name -> function) standing in for the real one."""
    build = FakedBuild(tmp_path)
    for module, function in fakes.items():
        build.module(module, function)
    build.run(command, ["/bin/sh", "-c"])
    return build


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

    # Every Image builder: a new Image is its parent's steps and this one (kept alive, so that
    # no id is reused while the manifest is loaded).
    images: dict[int, tuple[Any, list[Step]]] = {}

    def recording_builder(name: str, original: Any, static: bool) -> Any:
        def builder(*args: Any, **kwargs: Any) -> Any:
            image = original(*args, **kwargs)
            parent = [] if static else images.get(id(args[0]), (None, []))[1]
            if isinstance(image, modal.Image):
                images[id(image)] = (
                    image,
                    [*parent, Step(name, args[0 if static else 1 :], kwargs)],
                )
            return image

        return staticmethod(builder) if static else builder

    for name in dir(modal.Image):
        attribute = inspect.getattr_static(modal.Image, name)
        if not name.startswith("_") and isinstance(attribute, staticmethod | FunctionType):
            static = isinstance(attribute, staticmethod)
            original = attribute.__func__ if static else attribute
            monkeypatch.setattr(modal.Image, name, recording_builder(name, original, static))

    with contextlib.ExitStack() as loaded:

        def load(stem: str) -> Manifest:
            module = loaded.enter_context(imported_manifest(stem))
            return Manifest(module, functions, names, images)

        yield load


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
    (install,) = steps(manifest.built(serve.function["image"]), "pip_install")
    assert f"vllm=={module.VLLM_VERSION}" in install.args

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


def test_tts_server_on_a_t4_as_an_asgi_app(load_manifest: Any, tmp_path: Any) -> None:
    manifest = load_manifest("xtts_app")
    module = manifest.module
    assert module.app.name == "voice-kit-tts"
    web = manifest.of(module.web)
    assert web.function["gpu"] == "T4"
    assert "asgi_app" in web.decorators
    assert web.function["scaledown_window"] >= 60
    built = manifest.built(web.function["image"])
    methods = [step.method for step in built]
    # Deps from uv.lock (the extras the TTS image installs), then the weights baked at build,
    # with the licence accepted in the open before them; the code last.
    (sync,) = steps(built, "uv_sync")
    assert sync.kwargs["extras"] == ["tts", "xtts"]
    assert "--no-dev" in sync.kwargs["extra_options"]
    assert not steps(built, "pip_install")
    licence = next(i for i, s in enumerate(built) if s.args == ({"COQUI_TOS_AGREED": "1"},))
    (bake,) = steps(built, "run_commands")
    assert methods.index("uv_sync") < licence < built.index(bake)
    assert methods[-1] == "add_local_python_source" and built[-1].args == ("xtts",)
    # The bake downloads the XTTS v2 files the engine loads to where the server looks.
    (command,) = bake.args
    build = run_command(command, tmp_path, huggingface_hub="snapshot_download")
    (download,) = build.of("huggingface_hub.snapshot_download")
    assert download["args"] == ["coqui/XTTS-v2"]
    assert download["kwargs"] == {
        "revision": module.XTTS_REVISION,
        "local_dir": module.MODEL_DIR,
        "allow_patterns": ["config.json", "model.pth", "vocab.json", "speakers_xtts.pth"],
    }
    server = {"TTS_ENGINE": "xtts", "TTS_DEVICE": "cuda", "XTTS_MODEL_DIR": module.MODEL_DIR}
    assert environment(built).items() >= server.items()


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
    assert manifest.named(web.function["secrets"]) == ["voice-kit-bot", "voice-kit-llm-key"]
    built = manifest.built(web.function["image"])
    # The container refuses the call beyond its share; Whisper is the baked model, on the GPU.
    container = environment(built)
    assert container["BOT_MAX_CALLS"] == str(calls)
    assert module.WHISPER_MODEL == "large-v3-turbo"
    assert (container["WHISPER_MODEL"], container["WHISPER_DEVICE"]) == (
        module.WHISPER_MODEL,
        "cuda",
    )
    # Deps from uv.lock: the bot extra (no torch), as the bot image installs it.
    (sync,) = steps(built, "uv_sync")
    assert sync.kwargs["extras"] == ["bot"]
    assert "--no-dev" in sync.kwargs["extra_options"]
    assert not steps(built, "pip_install")


def test_bot_bakes_whisper_and_never_reaches_for_the_hub_after(
    load_manifest: Any, tmp_path: Any
) -> None:
    manifest = load_manifest("bot_app")
    module = manifest.module
    built = manifest.built(manifest.of(module.web).function["image"])
    (bake,) = steps(built, "run_commands")
    (command,) = bake.args
    build = run_command(command, tmp_path, faster_whisper="download_model")
    assert [c["args"] for c in build.of("faster_whisper.download_model")] == [
        [module.WHISPER_MODEL]
    ]
    # Into the hub's cache as set before the bake; offline from then on.
    before, after = built[: built.index(bake)], built[built.index(bake) :]
    assert "HF_HOME" in environment(before)
    assert environment(after)["HF_HUB_OFFLINE"] == "1"


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
