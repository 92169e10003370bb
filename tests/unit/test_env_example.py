""".env.example lists every variable the kit reads, with the code's defaults, and nothing else.

It is written from the settings classes (scripts/settings_docs.py), so every field of every class
is in it with its default; tests/unit/test_settings_docs.py checks that it is current. Left to
check here: the variables scripts read one by one, outside the classes, are fields too (with the
same defaults); ComposeSettings names only what compose/compose.yaml and the scripts read (its
defaults are checked against compose.yaml's in tests/unit/test_compose.py); the example is a
valid configuration; and every part reads `.env` and the environment alike.
"""

import re

from bot.config import PROMPTS_DIR
from bot.config import Settings as BotSettings
from scripts.base_image import MIRRORS
from scripts.compose_settings import ComposeSettings
from scripts.llm_server import LLMServerSettings
from scripts.run import LauncherSettings
from scripts.settings_docs import PROCESSES, variables
from tests.support import ROOT
from xtts.config import Settings as TTSSettings
from xtts.engines.choice import choose_engine

EXAMPLE = ROOT / ".env.example"
COMPOSE = ROOT / "compose" / "compose.yaml"


def compose_variables() -> set[str]:
    """Variables compose.yaml interpolates (`${NAME:-default}`) or makes secrets of."""
    text = COMPOSE.read_text()
    interpolated = re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text)
    secrets = re.findall(r"^\s+environment: ([A-Z_][A-Z0-9_]*)$", text, flags=re.MULTILINE)
    return set(interpolated) | set(secrets)


def process_variables() -> set[str]:
    return {
        name.upper()
        for process in PROCESSES
        if process.settings is not ComposeSettings
        for name in process.settings.model_fields
    }


def test_the_base_image_script_reads_the_mirrors_with_composes_defaults():
    """scripts/base_image.py runs in the system's Python, without the settings classes."""
    documented = variables()
    for name, default in MIRRORS.items():
        assert documented.get(name) == default, f"{name}: the script's default {default}"


def test_compose_settings_are_what_compose_and_the_scripts_read_and_nothing_else():
    own = {name.upper() for name in ComposeSettings.model_fields}
    unread = own - compose_variables() - set(MIRRORS)
    assert unread == set(), "ComposeSettings fields nothing reads"
    assert own.isdisjoint(process_variables()), "a process's setting belongs to its own class"
    assert compose_variables() <= set(variables()), "compose.yaml reads a variable no class has"


def test_the_example_is_a_valid_configuration(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text(EXAMPLE.read_text())
    monkeypatch.chdir(ROOT)
    for name in variables():
        monkeypatch.delenv(name, raising=False)
    bot = BotSettings(_env_file=tmp_path / ".env")
    tts = TTSSettings(_env_file=tmp_path / ".env")
    engine = choose_engine(tts).name
    assert (bot.bot_port, engine, tts.xtts_model_dir) == (7860, "hibari", None)
    for settings in (LauncherSettings, LLMServerSettings, ComposeSettings):
        assert settings(_env_file=tmp_path / ".env") == settings(_env_file=None), settings
    # The lines themselves: the JSON list, the path relative to the repository.
    assert bot.bot_ice_servers == []
    assert bot.bot_prompt_file.resolve() == PROMPTS_DIR / "miss_harper.md"


def test_every_part_reads_dotenv_and_the_environment_alike(monkeypatch, tmp_path):
    """The launcher and the embedded LLM server read `.env` as the bot and the TTS server do, and
    a variable set in the environment wins over the file everywhere."""
    (tmp_path / ".env").write_text(
        "RUN_READY_TIMEOUT=5\nLLM_SERVER_PORT=9999\nLLM_THREADS=3\nBOT_PORT=9001\nTTS_PORT=9002\n"
    )
    monkeypatch.chdir(tmp_path)
    for name in variables():
        monkeypatch.delenv(name, raising=False)
    assert LauncherSettings().run_ready_timeout == 5
    assert (LLMServerSettings().llm_server_port, LLMServerSettings().llm_threads) == (9999, 3)
    assert (BotSettings().bot_port, TTSSettings().tts_port) == (9001, 9002)
    monkeypatch.setenv("LLM_SERVER_PORT", "9998")
    monkeypatch.setenv("RUN_READY_TIMEOUT", "7")
    assert (LLMServerSettings().llm_server_port, LauncherSettings().run_ready_timeout) == (9998, 7)
