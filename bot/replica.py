"""Where this bot process is reached: behind the kit's proxy, at `/replicas/<its hostname>`.

Compose runs several bot processes behind one proxy (docker/proxy.conf). A call's first request
(an offer, `/ws`, the phone webhook) goes to any of them; the proxy marks it with the header
below, and the replica answers with URLs under its own path, which the proxy routes back to it
(stripping the prefix): the page's later signalling and Twilio's stream reach the process that
holds the call. Reached directly (`make run`), no header: plain paths.
"""

from __future__ import annotations

import functools
import socket

from starlette.requests import HTTPConnection

# Set by the proxy on every request it forwards: the path under which it routes to a replica.
ROUTE_HEADER = "x-replicas-path"
# Set by the proxy when every replica has answered 503: this one must answer the caller in words.
LAST_TRY_HEADER = "x-replicas-last-try"


@functools.cache
def name() -> str:
    """This replica's name on the proxy's network: its hostname (in Compose, the container's)."""
    return socket.gethostname()


def public_path(connection: HTTPConnection, path: str) -> str:
    """`path` as a caller must ask for it to reach this process again."""
    route = connection.headers.get(ROUTE_HEADER, "").rstrip("/")
    if not route.startswith("/"):
        return path
    return f"{route}/{name()}{path}"


def others_may_answer(connection: HTTPConnection) -> bool:
    """Whether a 503 sends this call on to another replica (the proxy tries each in turn)
    rather than to the caller, who is owed words: a busy tone, a message on the page."""
    headers = connection.headers
    return ROUTE_HEADER in headers and LAST_TRY_HEADER not in headers
