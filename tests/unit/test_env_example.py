""".env.example lists every variable the kit reads, with the code's defaults, and nothing else.

"Reads" includes compose/compose.yaml: the variables it interpolates for its containers (HF_TOKEN,
COQUI_TOS_AGREED, OLLAMA_*, ...) are documented there too; tests/unit/test_compose.py checks
that each one is, with compose's own default.
"""

import json
import re

from bot.config import Settings as BotSettings
from tests.support import ROOT
from xtts.config import Settings as TTSSettings

EXAMPLE = ROOT / ".env.example"
COMPOSE = ROOT / "compose" / "compose.yaml"


def example() -> dict[str, str]:
    lines = EXAMPLE.read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {name: value for name, value in pairs}


def launcher_variables() -> set[str]:
    """Variables the scripts read from the environment (and .env, through their `setting`)."""
    found: set[str] = set()
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
    for settings in (BotSettings, TTSSettings):
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
    assert (bot.bot_port, tts.tts_engine, tts.xtts_model_dir) == (7860, "hibari", None)
