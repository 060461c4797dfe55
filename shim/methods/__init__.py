"""The legacy API: the method table as data, one module per family of methods, the structs they build."""
