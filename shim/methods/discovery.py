"""Discovery: search and browse, answered from the Simple index's names and the catalog.

search: PyPI's argument rules (the allowed fields, a string or a list per field, values ORed within a field,
fields combined with `and`/`or`, other keys and empty values ignored, `version` giving one hit per requested
version). Names are matched over every project (a normalised substring; an exact name ranks first); the other
fields over the catalog's full-text table, every word of a value as a word prefix. Ranking: exact name,
then by weight of the fields matched (name 10; summary, description, keywords 5; others 1), then shorter
names. Hits whose summary and version the catalog lacks are filled from their JSON within a deadline.

A search's work is bounded: at most 100 values per field, 200 in all, 200 characters each (past them, a
`ValueError` fault in the words of PyPI's operator check). Names are matched and ranked in a worker thread, slice
by slice, so that other calls are answered meanwhile and a call cut off at its deadline stops its matching too.
"""

from __future__ import annotations

import asyncio
import heapq
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

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
MAX_VALUES_PER_FIELD = 100
MAX_VALUES = 200
MAX_VALUE_LENGTH = 200
SLICE = 20_000  # substring checks (names times values) between two looks at whether the call still waits

T = TypeVar("T")

# The matching's own threads: searches queue here, never in front of the catalog's reads in asyncio's pool.
_MATCHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="shim-search")


class _Stopped(Exception):
    """The call stopped waiting (cut off at its deadline): the matching stops too."""


def clean_spec(spec: Mapping[str, str | list[str]]) -> dict[str, list[str]]:
    """Warehouse's cleaning: unknown keys and empty values dropped, a string is a one-element list."""
    return {k: [v] if isinstance(v, str) else list(v) for k, v in spec.items() if v and k in SEARCH_FIELDS}


def _check_bounds(fields: Mapping[str, list[str]]) -> None:
    """A bounded amount of matching per call: 25,000 values over every project held the event loop for minutes."""
    for field, values in fields.items():
        if len(values) > MAX_VALUES_PER_FIELD:
            raise Refused(ValueError(f"Invalid spec, {field!r} must have at most {MAX_VALUES_PER_FIELD} values."))
        if any(len(value) > MAX_VALUE_LENGTH for value in values):
            raise Refused(
                ValueError(f"Invalid spec, the values of {field!r} must be at most {MAX_VALUE_LENGTH} characters long.")
            )
    if sum(len(values) for values in fields.values()) > MAX_VALUES:
        raise Refused(ValueError(f"Invalid spec, must have at most {MAX_VALUES} values in all."))


def _name_form(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text.strip().lower())


async def _off_the_loop(work: Callable[[threading.Event], T]) -> T:
    """Run `work` in a matching thread; once the call stops waiting for it, `work` sees its event set."""
    stop = threading.Event()
    try:
        return await asyncio.get_running_loop().run_in_executor(_MATCHING, work, stop)
    finally:
        stop.set()


def _slices(items: Iterable[T], stop: threading.Event, size: int) -> Iterable[list[T]]:
    """`items` in lists of `size`; between two, stop if the call no longer waits, and hand the event loop's
    thread the interpreter (sleep(0) lets it go at once, not at the next forced switch)."""
    it = iter(items)
    while batch := list(islice(it, size)):
        if stop.is_set():
            raise _Stopped
        yield batch
        time.sleep(0)


def _names_containing(names: Collection[str], wanted: list[str], stop: threading.Event) -> set[str]:
    found: set[str] = set()
    for batch in _slices(names, stop, max(1, SLICE // max(1, len(wanted)))):
        for part in wanted:
            found.update([name for name in batch if part in name])
    return found


@dataclass
class _Candidate:
    normalized: str
    score: int = 0


async def _field_matches(context: CallContext, snapshot: IndexSnapshot, field: str, values: list[str]) -> set[str]:
    if field == "name":
        wanted = [part for part in dict.fromkeys(map(_name_form, values)) if part]  # each once
        return await _off_the_loop(lambda stop: _names_containing(snapshot.positions.keys(), wanted, stop))
    catalog = context.services.catalog
    found: set[str] = set()
    for value in values:
        if field == "version":
            found |= await catalog.run(catalog.with_version, value)
        else:
            words = re.findall(r"\w+", value.lower())
            found |= await catalog.run(catalog.text_matches, field, words)
    return found


def _ranked(matches: Mapping[str, set[str]], exact: set[str], operator: str, stop: threading.Event) -> list[_Candidate]:
    """The best MAX_HITS candidates: exact name, then the weight of the fields matched, then shorter names."""
    sets = list(matches.values())
    chosen = set.intersection(*sets) if operator == "and" else set.union(*sets)
    candidates = []
    for batch in _slices(chosen, stop, max(1, SLICE // len(matches))):
        for name in batch:
            score = sum(WEIGHTS.get(f, 1) for f, found in matches.items() if name in found and f != "version")
            candidates.append(_Candidate(name, score + (EXACT_NAME if name in exact else 0)))
    return heapq.nsmallest(MAX_HITS, candidates, key=lambda c: (-c.score, len(c.normalized), c.normalized))


async def _search_hits(
    context: CallContext, spec: Mapping[str, str | list[str]], operator: str
) -> list[dict[str, Any]]:
    if operator not in ("and", "or"):
        raise Refused(ValueError("Invalid operator, must be one of 'and' or 'or'."))
    fields = clean_spec(spec)
    if not fields:
        return []
    _check_bounds(fields)
    snapshot = await context.services.index.current()
    matches = {field: await _field_matches(context, snapshot, field, values) for field, values in fields.items()}
    exact = {_name_form(v) for v in fields.get("name", [])}
    best = await _off_the_loop(lambda stop: _ranked(matches, exact, operator, stop))
    details = await _details(context, [c.normalized for c in best])
    versions = fields.get("version")
    hits = []
    for candidate in best:
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
