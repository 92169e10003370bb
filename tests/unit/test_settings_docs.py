""".env.example and docs/configuration.md: what scripts/settings_docs.py writes from the settings
classes, current, with a description of every field, rendered as users read and write them."""

from typing import ClassVar

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings

from bot.config import Settings as BotSettings
from scripts import settings_docs
from scripts.compose_settings import ComposeSettings
from scripts.settings_docs import PROCESSES, allowed, env_value, markdown, render, sections
from xtts.config import Settings as TTSSettings


@pytest.mark.parametrize("path", list(render()), ids=lambda path: path.name)
def test_the_generated_file_is_current(path):
    assert path.read_text(encoding="utf-8") == render()[path], (
        f"{path.name} is not what the settings classes say: run make settings-docs"
    )


@pytest.mark.parametrize("process", PROCESSES, ids=lambda process: process.source)
def test_every_field_has_a_description_and_a_section(process):
    settings = process.settings
    fields = list(settings.model_fields)
    bare = [name for name, info in settings.model_fields.items() if not info.description]
    assert bare == [], f"{settings.__name__}: fields without a description"
    starts = list(settings.SECTIONS)
    assert starts[0] == fields[0], "the first section starts at the first field"
    assert set(starts) <= set(fields) and starts == sorted(starts, key=fields.index)
    assert set(getattr(settings, "SECTION_NOTES", {})) <= set(starts)
    assert settings.model_config.get("env_prefix", "") == "", "variables are the field names"


def test_env_example_has_every_variable_once_in_lines_of_99_columns():
    lines = render()[settings_docs.ENV_EXAMPLE].splitlines()
    assert max(len(line) for line in lines) <= 99
    names = [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]
    assert sorted(names) == sorted(settings_docs.variables()), "each variable, once"
    # Read by the bot and the TTS server alike: one line, in the bot's section.
    assert names.count("TTS_VOICE") == 1


def test_defaults_are_written_as_a_dotenv_line_takes_them():
    bot, tts, compose = (
        BotSettings.model_fields,
        TTSSettings.model_fields,
        ComposeSettings.model_fields,
    )
    assert env_value(bot["bot_prompt_file"]) == "bot/prompts/miss_harper.md", "repository-relative"
    assert env_value(bot["bot_ice_servers"]) == "[]"
    assert env_value(bot["twilio_record_calls"]) == "false"
    assert env_value(bot["llm_read_ahead_secs"]) == "0.0"
    assert env_value(tts["xtts_model_dir"]) == "", "None"
    assert env_value(compose["hf_token"]) == env_value(bot["twilio_auth_token"]) == "", "secrets"


def test_allowed_values_come_from_the_types():
    bot, tts = BotSettings.model_fields, TTSSettings.model_fields
    assert allowed(bot["whisper_device"]) == "`auto` | `cpu` | `cuda` | `mlx`"
    assert allowed(bot["bot_port"]) == "integer ≥ 1 and ≤ 65535"
    assert allowed(bot["llm_timeout_secs"]) == "number > 0 and ≤ 600"
    assert allowed(bot["llm_model"]) == "text, not empty"
    assert allowed(bot["rnnoise"]) == "`true` | `false`"
    assert allowed(bot["bot_ice_servers"]) == "a JSON list"
    assert allowed(tts["xtts_model_dir"]) == "path, or empty"


def test_a_description_becomes_one_table_cell_with_its_docs_linked():
    text = "a | b, see docs/llm.md#which-model-by-default\nand docs/operations.md."
    assert markdown(text) == (
        "a \\| b, see [llm.md](llm.md#which-model-by-default) and [operations.md](operations.md)."
    )


def test_the_configuration_page_has_a_section_per_process_and_a_table_per_section():
    page = render()[settings_docs.CONFIGURATION]
    for process in PROCESSES:
        assert f"\n## {process.title} ({process.source})\n" in page
        for section in sections(process.settings):
            assert f"\n### {section.title}\n" in page
    assert "| `WHISPER_DEVICE` | `auto` | `auto` \\| `cpu` \\| `cuda` \\| `mlx` | " in page
    assert "make settings-docs" in page and "/run/secrets" in page


def test_check_names_a_stale_file_and_writes_nothing(monkeypatch, tmp_path, capsys):
    example, page = tmp_path / ".env.example", tmp_path / "configuration.md"
    monkeypatch.setattr(settings_docs, "ENV_EXAMPLE", example)
    monkeypatch.setattr(settings_docs, "CONFIGURATION", page)
    assert settings_docs.main(["--check"]) == 1, "missing files are stale"
    assert not example.exists()
    assert settings_docs.main([]) == 0
    assert settings_docs.main(["--check"]) == 0
    page.write_text("edited by hand\n")
    capsys.readouterr()
    assert settings_docs.main(["--check"]) == 1
    assert capsys.readouterr().err == f"{page} is stale: run make settings-docs\n"
    assert page.read_text() == "edited by hand\n"


def test_a_field_without_a_description_or_a_section_stops_the_generator():
    class Bare(BaseSettings):
        SECTIONS: ClassVar[dict[str, str]] = {"x": "X"}
        x: int = 1

    class Unsectioned(BaseSettings):
        SECTIONS: ClassVar[dict[str, str]] = {"y": "Y"}
        x: int = Field(1, description="x")
        y: int = Field(2, description="y")

    with pytest.raises(ValueError, match=r"Bare\.x: no description"):
        sections(Bare)
    with pytest.raises(ValueError, match="must start with its first field"):
        sections(Unsectioned)
