"""`python -m shim`: the same as the `pypi-xmlrpc-shim` command."""

from shim.cli import main

main()
