"""Discovery: search and browse, answered from the Simple index's names and the catalog.

search: PyPI's argument rules (the allowed fields, a string or a list per field, values ORed within a field,
fields combined with `and`/`or`, other keys and empty values ignored, `version` giving one hit per requested
version), and its Elasticsearch's ranking (shim.catalog.ranking: each query word a field holds scores by how often
and how rare it is, with PyPI's boosts; the exact name first). Names are matched over every project the Simple
index lists, each word of a value as a normalised substring (PyPI's rule), weighing more as whole parts of the name;
the other fields over the catalog, word by word as PyPI's analyzers saw them (shim.catalog.terms), its full-text
engine finding the candidates. Hits whose summary and version the catalog lacks are filled from their JSON within
a deadline.

A search's work is bounded: at most 100 values per field, 200 in all, 200 characters each (past them, a
`ValueError` fault in the words of PyPI's operator check). Names are matched and ranked in a worker thread, slice
by slice, so that other calls are answered meanwhile and a call cut off at its deadline stops its matching too.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pydantic import StrictStr

from shim.catalog.ranking import FieldScores, best
from shim.catalog.search_table import SEARCHED
from shim.catalog.terms import query_terms
from shim.errors import Refused, UpstreamError
from shim.methods.reading import read_catalog, reads_settled
from shim.upstream.compact import SEP, NameList
from shim.upstream.name_order import NameOrder
from shim.upstream.simple_index import IndexSnapshot
from shim.xmlrpc.context import CallContext
from shim.xmlrpc.text import clean_for_xml

__all__ = ["SEARCH_FIELDS", "browse", "search"]

# What PyPI's search read: the name and version, and the text fields the catalog keeps.
SEARCH_FIELDS = frozenset({"name", "version", *SEARCHED})
MAX_HITS = 100
MAX_VALUES_PER_FIELD = 100
MAX_VALUES = 200
MAX_VALUE_LENGTH = 200
SLICE = 20_000  # names checked for a word between two looks at whether the call still waits

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


def _name_postings(names: NameList, word: str, stop: threading.Event) -> dict[str, float]:
    """The names holding `word` (PyPI's substring match): 1 where it is whole parts of the name (`tracker` in
    `issue-tracker-lite`), 0.5 where it is inside one (`track`). One `str.find` over the buffer of every name
    goes from each name holding it to the next: no look at the names between."""
    whole = f"-{word}-"
    postings: dict[str, float] = {}
    text, starts = names.text, names.starts
    offset = text.find(word)
    while offset != -1:
        if names.plain:  # the name's ends are the separators around the word (a name is a few dozen characters)
            start, end = text.rfind(SEP, 0, offset) + 1, text.find(SEP, offset)
            end = len(text) if end == -1 else end
        else:
            position = names.position_at(offset)
            start, end = starts[position], starts[position + 1] - 1
        name = text[start:end]
        postings[name] = 1.0 if whole in f"-{name}-" else 0.5
        if len(postings) % SLICE == 0:
            if stop.is_set():
                raise _Stopped
            time.sleep(0)  # the event loop's thread gets the interpreter
        offset = text.find(word, end + 1)
    return postings


_ordering = threading.Lock()


def _name_order(snapshot: IndexSnapshot) -> NameOrder:
    """The snapshot's names in search's order, built the first time a search of it needs them (in a matching
    thread, one build at a time) and kept with the snapshot's other derived answers, gone with it."""
    with _ordering:
        order: NameOrder | None = snapshot.answers.get("name-order")
        if order is None:
            order = snapshot.answers["name-order"] = NameOrder(snapshot.normalized.text.split(SEP))
        return order


def _name_words(values: list[str]) -> list[str]:
    """The words of the name values, each in its normalised form, once (a value's words are ORed, as any field's)."""
    words = (_name_form(part).strip("-") for value in values for part in value.split())
    return sorted({word for word in words if word})


def _score_names(scores: FieldScores, names: NameList, words: list[str], stop: threading.Event) -> None:
    for word in words:
        scores.add(_name_postings(names, word, stop))


async def _field_scores(context: CallContext, snapshot: IndexSnapshot, field: str, values: list[str]) -> FieldScores:
    """What one field of the spec matched, scored: names over every project, the rest over the catalog."""
    scores = FieldScores(field, snapshot.distinct)
    if field == "name":
        words = _name_words(values)
        await _off_the_loop(lambda stop: _score_names(scores, snapshot.normalized, words, stop))
        return scores
    catalog = context.services.catalog
    if field == "version":
        for value in sorted(set(values)):
            scores.add(dict.fromkeys(await catalog.run(catalog.with_version, value), 1.0))
        return scores
    terms = query_terms(field, values)
    postings = await catalog.run(catalog.term_postings, field, terms)

    def score(stop: threading.Event) -> None:
        for term in terms:
            scores.add(postings.get(term, {}))

    await _off_the_loop(score)
    return scores


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
    words = _name_words(fields["name"]) if fields.keys() == {"name"} else []
    exact = {_name_form(v) for v in fields.get("name", [])}
    if len(words) == 1 and exact == set(words) and snapshot.normalized.plain:  # the commonest: its best, met first
        chosen = await _off_the_loop(lambda stop: _name_order(snapshot).best(words[0], MAX_HITS))
    else:
        scores = [await _field_scores(context, snapshot, field, values) for field, values in fields.items()]
        chosen = await _off_the_loop(lambda stop: best(scores, exact, operator, MAX_HITS))
    details = await _details(context, chosen)
    versions = fields.get("version")
    hits = []
    for normalized in chosen:
        found = details.get(normalized)
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
    await reads_settled(context)
    return await _search_hits(context, spec, operator)
