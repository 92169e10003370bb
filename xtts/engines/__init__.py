"""Speech engines behind the server; see `xtts.engines.base` for the contract and registry."""
