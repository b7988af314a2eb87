"""The Genesis HTTP API (aiohttp): commands in, sessions and events out."""
