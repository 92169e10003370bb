"""Point a Twilio phone number's voice webhook at this kit: PUBLIC_URL/twilio/voice.

    python scripts/twilio_setup.py +15551234567

Reads TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and PUBLIC_URL from the environment or .env (the
bot's settings). PUBLIC_URL is the https address Twilio reaches: a tunnel to `make run`
(e.g. `ngrok http 7860`) or the bot's Modal URL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import load_settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("number", help="the Twilio number, E.164 (+15551234567)")
    args = parser.parse_args()
    settings = load_settings()
    token = settings.twilio_auth_token.get_secret_value()
    missing = [
        name
        for name, value in (
            ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
            ("TWILIO_AUTH_TOKEN", token),
            ("PUBLIC_URL", settings.public_url),
        )
        if not value
    ]
    if missing:
        print(f"set {', '.join(missing)} (in .env or the environment)", file=sys.stderr)
        return 2
    if not settings.public_url.startswith("https://"):
        print("PUBLIC_URL: Twilio needs an https:// address", file=sys.stderr)
        return 2

    from twilio.rest import Client

    client = Client(settings.twilio_account_sid, token)
    client.api.base_url = settings.twilio_api_base_url
    numbers = client.incoming_phone_numbers.list(phone_number=args.number, limit=1)
    if not numbers:
        print(f"{args.number} is not a number of this Twilio account", file=sys.stderr)
        return 1
    webhook = f"{settings.public_url}/twilio/voice"
    numbers[0].update(voice_url=webhook, voice_method="POST")
    print(f"calls to {args.number} now reach {webhook}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
