"""Discovery: search and browse, answered from the Simple index's names and the catalog.

search: PyPI's argument rules (the allowed fields, a string or a list per field, values ORed within a field,
fields combined with `and`/`or`, other keys and empty values ignored, `version` giving one hit per requested
version). Names are matched over every project (a normalised substring; an exact name ranks first); the other
fields over the catalog's full-text table, every word of a value as a word prefix. Ranking: exact name,
then by weight of the fields matched (name 10; summary, description, keywords 5; others 1), then shorter
names. Hits whose summary and version the catalog lacks are filled from their JSON within a deadline.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import StrictStr

from shim.catalog.schema import SEARCHED
from shim.errors import Refused, UpstreamError
from shim.methods.reading import read_catalog
from shim.upstream.simple_index import IndexSnapshot
from shim.xmlrpc.context import CallContext
from shim.xmlrpc.text import clean_for_xml

__all__ = ["SEARCH_FIELDS", "browse", "search"]

# What PyPI's search read: the name and version, and the text fields the catalog keeps.
SEARCH_FIELDS = frozenset({"name", "version", *SEARCHED})
WEIGHTS = {"name": 10, "summary": 5, "description": 5, "keywords": 5}
MAX_HITS = 100
EXACT_NAME = 1000


def clean_spec(spec: Mapping[str, str | list[str]]) -> dict[str, list[str]]:
    """Warehouse's cleaning: unknown keys and empty values dropped, a string is a one-element list."""
    return {k: [v] if isinstance(v, str) else list(v) for k, v in spec.items() if v and k in SEARCH_FIELDS}


def _name_form(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text.strip().lower())


@dataclass
class _Candidate:
    normalized: str
    score: int = 0


async def _field_matches(context: CallContext, snapshot: IndexSnapshot, field: str, values: list[str]) -> set[str]:
    catalog = context.services.catalog
    found: set[str] = set()
    for value in values:
        if field == "name":
            wanted = _name_form(value)
            if wanted:
                found |= {name for name in snapshot.positions if wanted in name}
        elif field == "version":
            found |= await catalog.run(catalog.with_version, value)
        else:
            words = re.findall(r"\w+", value.lower())
            found |= await catalog.run(catalog.text_matches, field, words)
    return found


async def _search_hits(
    context: CallContext, spec: Mapping[str, str | list[str]], operator: str
) -> list[dict[str, Any]]:
    if operator not in ("and", "or"):
        raise Refused(ValueError("Invalid operator, must be one of 'and' or 'or'."))
    fields = clean_spec(spec)
    if not fields:
        return []
    snapshot = await context.services.index.current()
    matches = {field: await _field_matches(context, snapshot, field, values) for field, values in fields.items()}
    sets = list(matches.values())
    chosen = set.intersection(*sets) if operator == "and" else set.union(*sets)
    exact = {_name_form(v) for v in fields.get("name", [])}
    candidates = []
    for name in chosen:
        score = sum(WEIGHTS.get(field, 1) for field, found in matches.items() if name in found and field != "version")
        candidates.append(_Candidate(name, score + (EXACT_NAME if name in exact else 0)))
    candidates.sort(key=lambda c: (-c.score, len(c.normalized), c.normalized))
    details = await _details(context, [c.normalized for c in candidates[:MAX_HITS]])
    versions = fields.get("version")
    hits = []
    for candidate in candidates[:MAX_HITS]:
        found = details.get(candidate.normalized)
        if found is None:
            continue  # neither the index nor the upstream told its summary and version in time
        display, summary, latest, known_versions = found
        for version in [v for v in known_versions if v in versions] if versions else [latest]:
            hits.append(
                {"name": display, "summary": clean_for_xml(summary), "version": version, "_pypi_ordering": False}
            )
    return hits


async def _details(context: CallContext, names: list[str]) -> dict[str, tuple[str, str | None, str, list[str]]]:
    """(display name, summary, latest version, every version) per project: the catalog, else its JSON."""
    catalog = context.services.catalog
    stored = await catalog.run(catalog.projects_metadata, names)
    details = {
        name: (
            found.name,
            found.fields.get("summary"),
            found.fields["version"],
            list(found.fields.get("versions") or []),
        )
        for name, found in stored.items()
    }
    missing = [name for name in names if name not in details]
    if missing:
        limit = asyncio.Semaphore(8)

        async def fill(name: str) -> None:
            async with limit:
                try:
                    doc = await context.services.store.project(name)
                except UpstreamError:
                    return
            if doc is not None:
                versions = list(doc.releases) if doc.releases is not None else [doc.version]
                details[name] = (doc.name, doc.info.get("summary"), doc.version, versions)

        tasks = [asyncio.create_task(fill(name)) for name in missing]
        _, late = await asyncio.wait(tasks, timeout=context.search_fill_timeout) if tasks else (set(), set())
        for task in late:
            task.cancel()  # the documents still arrive for the next search: the cache keeps them
    return details


async def browse(context: CallContext, classifiers: list[StrictStr]) -> list[Any]:
    """`[project, version]` for the releases carrying every listed classifier, by project then version."""
    releases = await read_catalog(context, context.services.catalog.with_classifiers, list(classifiers))
    return [[release.name, release.version] for release in releases]


async def search(
    context: CallContext,
    spec: Mapping[StrictStr, StrictStr | list[StrictStr]],
    operator: StrictStr = "and",
) -> list[Any]:
    """pip search: names over every project, the other fields over the catalog."""
    return await _search_hits(context, spec, operator)
