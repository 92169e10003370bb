""".env.example lists every variable the kit reads, with the code's defaults, and nothing else.

"Reads" includes compose/compose.yaml: the variables it interpolates for its containers (HF_TOKEN,
COQUI_TOS_AGREED, OLLAMA_*, ...) are documented there too; tests/unit/test_compose.py checks
that each one is, with compose's own default.
"""

import json
import re

from bot.config import Settings as BotSettings
from scripts.llm_server import LLMServerSettings
from scripts.run import LauncherSettings
from tests.support import ROOT
from xtts.config import Settings as TTSSettings
from xtts.engines.choice import choose_engine

EXAMPLE = ROOT / ".env.example"
COMPOSE = ROOT / "compose" / "compose.yaml"


def example() -> dict[str, str]:
    lines = EXAMPLE.read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {name: value for name, value in pairs}


def launcher_variables() -> set[str]:
    """Variables the scripts read: their settings classes' fields (`make run`'s launcher and the
    embedded LLM server), and any read one by one (`os.environ.get`, `setting`)."""
    found = {name.upper() for name in LauncherSettings.model_fields}
    found |= {name.upper() for name in LLMServerSettings.model_fields}
    for script in (ROOT / "scripts").glob("*.py"):
        text = script.read_text()
        found |= set(re.findall(r'(?:os\.environ\.get|\bsetting)\("([A-Z_]+)"', text))
    return found


def compose_variables() -> set[str]:
    """Variables compose.yaml interpolates (`${NAME:-default}`) or makes secrets of."""
    text = COMPOSE.read_text()
    interpolated = re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text)
    secrets = re.findall(r"^\s+environment: ([A-Z_][A-Z0-9_]*)$", text, flags=re.MULTILINE)
    return set(interpolated) | set(secrets)


def code_variables() -> set[str]:
    fields = set(BotSettings.model_fields) | set(TTSSettings.model_fields)
    return {name.upper() for name in fields} | launcher_variables()


def test_every_variable_the_code_reads_is_documented_and_nothing_else():
    documented = set(example())
    read = code_variables() | compose_variables()
    assert code_variables() - documented == set(), "read by the code but not in .env.example"
    assert documented - read == set(), "in .env.example but read by no code nor compose.yaml"


def test_documented_defaults_are_the_code_defaults():
    documented = example()
    for settings in (BotSettings, TTSSettings, LauncherSettings, LLMServerSettings):
        for name, field in settings.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if default is None:
                default = ""
            if isinstance(default, list):
                default = json.dumps(default)
            if isinstance(default, bool):
                default = str(default).lower()
            if hasattr(default, "relative_to"):  # a path inside the repository
                default = default.relative_to(ROOT)
            assert documented[name.upper()] == str(default), name.upper()


def test_the_example_is_a_valid_configuration(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text(EXAMPLE.read_text())
    monkeypatch.chdir(ROOT)
    for name in code_variables():
        monkeypatch.delenv(name, raising=False)
    bot = BotSettings(_env_file=tmp_path / ".env")
    tts = TTSSettings(_env_file=tmp_path / ".env")
    engine = choose_engine(tts).name
    assert (bot.bot_port, engine, tts.xtts_model_dir) == (7860, "hibari", None)


def test_every_part_reads_dotenv_and_the_environment_alike(monkeypatch, tmp_path):
    """The launcher and the embedded LLM server read `.env` as the bot and the TTS server do, and
    a variable set in the environment wins over the file everywhere."""
    (tmp_path / ".env").write_text(
        "RUN_READY_TIMEOUT=5\nLLM_SERVER_PORT=9999\nLLM_THREADS=3\nBOT_PORT=9001\nTTS_PORT=9002\n"
    )
    monkeypatch.chdir(tmp_path)
    for name in code_variables():
        monkeypatch.delenv(name, raising=False)
    assert LauncherSettings().run_ready_timeout == 5
    assert (LLMServerSettings().llm_server_port, LLMServerSettings().llm_threads) == (9999, 3)
    assert (BotSettings().bot_port, TTSSettings().tts_port) == (9001, 9002)
    monkeypatch.setenv("LLM_SERVER_PORT", "9998")
    monkeypatch.setenv("RUN_READY_TIMEOUT", "7")
    assert (LLMServerSettings().llm_server_port, LauncherSettings().run_ready_timeout) == (9998, 7)
