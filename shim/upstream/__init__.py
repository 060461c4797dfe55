"""The upstream index: the only HTTP to it, its documents through the cache, and the Simple index in memory."""
