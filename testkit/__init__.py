"""What the tests and the scripts share: a fake index that answers like Warehouse, and a real server in a thread.

Not part of the service (the wheel ships `shim` only)."""
