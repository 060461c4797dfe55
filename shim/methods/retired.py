"""What PyPI retired, in its own words: the refusals the table gives, and the one constant it still answers.

Every fixed fault string here is Warehouse's (spec §2.2), word for word; `{domain}` is the upstream's host.
"""

from __future__ import annotations

from pydantic import StrictStr

from shim.xmlrpc.context import CallContext
from shim.xmlrpc.table import Refuse

__all__ = [
    "CHANGELOG_RETIRED",
    "DEPRECATED",
    "DEPRECATION_URL",
    "MULTICALL_RETIRED",
    "REMOVED_FOR_BIGQUERY",
    "SEARCH_RETIRED",
    "gone",
    "package_hosting_mode",
]

DEPRECATION_URL = "https://warehouse.pypa.io/api-reference/xml-rpc.html#deprecated-methods"

# package_data, package_urls: refused by PyPI in every era this service reproduces.
DEPRECATED = Refuse("RuntimeError", f"This API has been deprecated. See {DEPRECATION_URL} for more information.")
REMOVED_FOR_BIGQUERY = Refuse(
    "RuntimeError", f"This API has been removed. Use BigQuery instead. See {DEPRECATION_URL} for more information."
)
SEARCH_RETIRED = Refuse(
    "RuntimeError",
    "PyPI no longer supports 'pip search' (or XML-RPC search). Please use https://{domain}/search "
    f"(via a browser) instead. See {DEPRECATION_URL} for more information.",
)
CHANGELOG_RETIRED = Refuse(
    "ValueError", "The changelog method has been deprecated, use changelog_since_serial instead."
)
MULTICALL_RETIRED = Refuse("ValueError", "MultiCall requests have been deprecated, use individual requests instead.")


def gone(method: str, instead: str) -> Refuse:
    """The refusal of a method PyPI switched off in 2024."""
    return Refuse(
        "RuntimeError",
        f"PyPI no longer supports the XMLRPC {method} method. Use {instead} instead. "
        f"See {DEPRECATION_URL} for more information.",
    )


async def package_hosting_mode(context: CallContext, package_name: StrictStr) -> str:
    """Every project was "pypi-only" once PyPI stopped hosting links."""
    return "pypi-only"
