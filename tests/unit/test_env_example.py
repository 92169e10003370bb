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
from scripts.compose_settings import ComposeSettings
from scripts.llm_server import LLMServerSettings
from scripts.run import LauncherSettings
from scripts.settings_docs import PROCESSES, variables
from tests.support import ROOT
from xtts.config import Settings as TTSSettings
from xtts.engines.choice import choose_engine

EXAMPLE = ROOT / ".env.example"
COMPOSE = ROOT / "compose" / "compose.yaml"
# os.environ.get("NAME", "default") or setting("NAME", "default") (scripts/base_image.py).
READ_ONE_BY_ONE = re.compile(r'(?:os\.environ\.get|\bsetting)\("([A-Z_]+)"(?:, "([^"]*)")?')


def read_one_by_one() -> dict[str, set[str]]:
    """Variables the scripts read outside the settings classes, with the literal defaults they
    give them."""
    found: dict[str, set[str]] = {}
    for script in (ROOT / "scripts").glob("*.py"):
        for name, default in READ_ONE_BY_ONE.findall(script.read_text()):
            found.setdefault(name, set()).update({default} if default else set())
    return found


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


def test_variables_the_scripts_read_one_by_one_are_settings_with_the_same_defaults():
    documented = variables()
    for name, defaults in read_one_by_one().items():
        assert name in documented, f"{name} is read by a script but is no settings field"
        assert defaults <= {documented[name]}, f"{name}: the script's default {defaults}"


def test_compose_settings_are_what_compose_and_the_scripts_read_and_nothing_else():
    own = {name.upper() for name in ComposeSettings.model_fields}
    unread = own - compose_variables() - set(read_one_by_one())
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
