"""A caller's choices: defaults from the settings, each bad value refused naming its field."""

import pytest

from bot.config import Settings
from bot.options import BadOptions, Choices


@pytest.fixture
def choices():
    return Choices(Settings(tts_voice="heart", bot_max_prompt_chars=50))


async def resolve(choices, raw):
    # session and speech are only used to look up voices, which these cases never need
    return await choices.resolve(raw, session=None, speech=None)


async def test_no_choices_means_the_settings(choices):
    options = await resolve(choices, None)
    assert (options.voice, options.language) == ("heart", "en")
    assert "Miss Harper" in options.prompt


async def test_a_persona_replaces_the_default_and_blank_means_default(choices):
    assert (
        await resolve(choices, {"prompt": "  You are a pirate.  "})
    ).prompt == "You are a pirate."
    assert "Miss Harper" in (await resolve(choices, {"prompt": "   "})).prompt


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ([], "options must be a JSON object with voice, language and prompt"),
        ({"prompt": 3}, "prompt: must be a string"),
        ({"prompt": "x" * 51}, "prompt: at most 50 characters (got 51)"),
    ],
)
async def test_bad_choices_name_their_field(choices, raw, error):
    with pytest.raises(BadOptions) as refused:
        await resolve(choices, raw)
    assert str(refused.value) == error


async def test_the_profile_defaults_to_the_kit_and_an_unknown_one_is_refused(choices):
    assert (await resolve(choices, {})).profile == "kit"
    assert (await resolve(choices, {"profile": "kit"})).profile == "kit"
    with pytest.raises(BadOptions, match=r"profile: must be one of kit, seed \(got 'fastest'\)"):
        await resolve(choices, {"profile": "fastest"})
