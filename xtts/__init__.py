"""A text-to-speech server that speaks the XTTS v2 streaming-server contract.

Pipecat's stock `XTTSService` (and anything else written for coqui's xtts-streaming-server)
can use it unchanged, backed by a fast offline engine (hibari, piper) or by XTTS v2 itself.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
