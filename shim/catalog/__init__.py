"""The catalog: the SQLite store of what the upstream showed over time, its one writer, and the crawler."""
