"""pypi-xmlrpc-shim: PyPI's legacy XML-RPC API, answered from the index's JSON, Simple and RSS APIs."""

__version__ = "0.1.0"
