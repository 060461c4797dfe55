"""Settings: the registry (each setting stated once), the value parsers, pip's index, the settings object."""
