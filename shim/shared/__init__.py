"""State shared by replicas (SHIM_CACHE_URL): the Redis connection every shared part uses, and what each falls back
to when it is gone. Without the setting nothing here is used: every part keeps its state in process."""
