"""Settings: defaults, environment names, and one plain line per bad variable."""

import pytest

from bot.config import CALLS_PER_CORE, PROMPTS_DIR, Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)


def test_defaults_are_the_seed_persona_on_the_usual_ports():
    settings = load_settings()
    assert settings.bot_port == 7860
    assert settings.xtts_base_url == "http://127.0.0.1:8001"
    assert settings.bot_prompt_file == PROMPTS_DIR / "miss_harper.md"
    assert "Miss Harper" in settings.system_prompt
    assert "elementary" in settings.system_prompt


def test_environment_and_dotenv_are_read(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("LLM_MODEL=qwen2.5:0.5b\nBOT_PORT=9000\n")
    monkeypatch.setenv("WHISPER_DEVICE", "CPU")  # choices are read whatever their case
    monkeypatch.setenv("BOT_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("LLM_BASE_URL", "http://ollama:11434/v1/")
    settings = load_settings()
    assert settings.bot_log_level == "debug"
    assert (settings.llm_model, settings.bot_port, settings.whisper_device) == (
        "qwen2.5:0.5b",
        9000,
        "cpu",
    )
    assert settings.llm_base_url == "http://ollama:11434/v1"  # trailing slash dropped


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "WHISPER_DEVICE",
            "gpu",
            "WHISPER_DEVICE: Input should be 'auto', 'cpu', 'cuda' or 'mlx' (got 'gpu')",
        ),
        (
            "BOT_PORT",
            "99999",
            "BOT_PORT: Input should be less than or equal to 65535 (got '99999')",
        ),
        (
            "LLM_BASE_URL",
            "localhost:11434",
            "LLM_BASE_URL: must be an http:// or https:// URL (got 'localhost:11434')",
        ),
        ("TTS_LANGUAGE", "klingon", "TTS_LANGUAGE: must be one of ar, cs, de, en"),
        (
            "BOT_PROMPT_FILE",
            "/nope.md",
            "BOT_PROMPT_FILE: must be a readable file (got '/nope.md')",
        ),
        (
            "TURN_DETECTION",
            "magic",
            "TURN_DETECTION: Input should be 'hybrid', 'smart-turn' or 'silence'",
        ),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as stopped:
        load_settings()
    message = str(stopped.value)
    assert message.startswith(expected)
    assert len(message.splitlines()) == 1


def test_every_bad_variable_gets_its_own_line(monkeypatch):
    monkeypatch.setenv("BOT_PORT", "0")
    monkeypatch.setenv("VAD_STOP_SECS", "-1")
    with pytest.raises(SettingsError) as stopped:
        load_settings()
    lines = str(stopped.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["BOT_PORT", "VAD_STOP_SECS"]


def test_whisper_size_names_map_to_mlx_hub_ids():
    from bot.models import mlx_model_name

    assert mlx_model_name("large-v3-turbo") == "mlx-community/whisper-large-v3-turbo"
    assert mlx_model_name("tiny") == "mlx-community/whisper-tiny"
    assert mlx_model_name("base.en") == "mlx-community/whisper-base.en-mlx"
    assert mlx_model_name("me/my-whisper") == "me/my-whisper"


def test_the_twilio_token_can_come_from_a_container_secret_and_is_never_printed(tmp_path):
    (tmp_path / "twilio_auth_token").write_text("s3cr3t-token\n")
    settings = Settings(_secrets_dir=tmp_path)
    assert settings.twilio_auth_token.get_secret_value() == "s3cr3t-token"
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings.model_dump())


def test_production_mode_refuses_phone_calls_without_a_twilio_token():
    from bot.app import create_app

    with pytest.raises(SystemExit) as stopped:
        create_app(Settings(bot_mode="production"))
    assert (
        str(stopped.value) == "TWILIO_AUTH_TOKEN: required when BOT_MODE=production (phone calls)"
    )


def test_secrets_are_read_from_files_and_an_empty_api_key_means_none(tmp_path):
    # Compose mounts each secret as a file; an unset LLM_API_KEY arrives as an empty one.
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "llm_api_key").write_text("")
    (secrets / "twilio_auth_token").write_text("token-from-a-file")
    settings = Settings(_secrets_dir=secrets)
    assert settings.llm_api_key == "EMPTY"
    assert settings.twilio_auth_token.get_secret_value() == "token-from-a-file"
    (secrets / "llm_api_key").write_text("key-from-a-file\n")
    assert Settings(_secrets_dir=secrets).llm_api_key == "key-from-a-file"


def test_the_bot_and_the_tts_server_speak_the_same_xtts_languages():
    """One fact on each side of the contract, pinned: a drift fails here, not on a caller."""
    from bot.config import XTTS_LANGUAGES as BOT
    from xtts.schemas import XTTS_LANGUAGES as SERVER

    assert sorted(BOT) == sorted(SERVER)
    assert Settings(tts_language="ar").tts_language == "ar"


@pytest.mark.parametrize(
    ("cores", "replicas", "max_calls", "expected"),
    [
        (2, 1, 0, 2),  # CALLS_PER_CORE calls a core, all in the one process
        (16, 4, 0, 4),  # shared out over the replicas
        (2, 4, 0, 1),  # never none
        (16, 4, 3, 3),  # BOT_MAX_CALLS as set
    ],
)
def test_the_call_limit_is_this_replicas_share_of_the_calls_per_core(
    monkeypatch, cores, replicas, max_calls, expected
):
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    settings = Settings(bot_replicas=replicas, bot_max_calls=max_calls)
    assert CALLS_PER_CORE == 1  # the figure docs/operations.md measures
    assert settings.max_calls == expected
