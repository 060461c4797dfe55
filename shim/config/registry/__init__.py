"""Every setting of the service, stated once: name, variable, option, default, meaning, validation.

The settings object's defaults, the CLI's options, `--help`, the README's settings table and the docs
page are all built from `REGISTRY`. A default is a value (shown as it is) or, where it depends on the
environment, a function of it (shim.config.defaults) with the words that describe it. The settings are
grouped by what they govern, one module each; `REGISTRY` lists them in that order.
"""

from __future__ import annotations

from typing import Any

from shim.config.registry.operations import OPERATIONS
from shim.config.registry.serving import SERVING
from shim.config.registry.sharing import SHARING
from shim.config.registry.storage import STORAGE
from shim.config.registry.upstream import UPSTREAM
from shim.config.setting import Setting

__all__ = ["BY_NAME", "REGISTRY"]

REGISTRY: tuple[Setting[Any], ...] = (*UPSTREAM, *SERVING, *STORAGE, *SHARING, *OPERATIONS)

BY_NAME: dict[str, Setting[Any]] = {setting.name: setting for setting in REGISTRY}
