"""The Simple index held compact (one string of names, arrays of serials and of sorted hashes): every answer it
gives is the one the dict of Python objects it replaced gave, hashes that collide included, and the whole-index
answers encoded from its buffers are byte for byte what encode_value gives for the same list and struct."""

from __future__ import annotations

import heapq
import json
import random
import re
import threading
import time
from array import array

import pytest
from packaging.utils import canonicalize_name
from starlette.testclient import TestClient

from shim.catalog.held import HeldSerials
from shim.catalog.ranking import FieldScores, best
from shim.methods.mirroring import names_answer, serials_answer
from shim.upstream import compact, index_json, parsers
from shim.upstream.changes import index_changes
from shim.upstream.compact import NO_SERIAL, NameList
from shim.upstream.index_json import plain_projects
from shim.upstream.parsers import IndexListing, parse_simple_index
from shim.upstream.simple_index import IndexSnapshot
from shim.xmlrpc.protocol import WireError, encode_value
from testkit.fakeindex import FakeIndex

from .helpers import call, served

# Names a listing may hold, a hostile one's too: case, runs of separators, markup, code points XML forbids,
# non-ASCII, the separator the buffer uses, and names listed twice (as given, and in another spelling).
ODD = ["Django", "zope.interface", "a__b--c", "x&y", "<tag>", "a\x00b", "caf\u00e9", "two\nlines", "\U0001f40d-py"]


def listing(names: list[str], serials: list[int | None] | None, last: int | None = None) -> IndexListing:
    packed = None if serials is None else array("q", (NO_SERIAL if s is None else s for s in serials))
    return IndexListing(NameList.of(names), packed, last)


def snapshot_of(names: list[str], serials: list[int | None] | None) -> IndexSnapshot:
    return IndexSnapshot.build(listing(names, serials), None, 0.0, serials is not None)


def positions(names: list[str]) -> dict[str, int]:
    """What IndexSnapshot held before: a dict, normalised name -> position (the later one of a name listed twice)."""
    return {canonicalize_name(name): i for i, name in enumerate(names)}


def random_names(rng: random.Random, count: int, odd: bool) -> list[str]:
    alphabet = "abcXYZ019-_." + ("&<\n\u00e9" if odd else "")
    names = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(count)]
    return [name for name in names if name.strip("-_.")] + (rng.sample(ODD, 3) if odd else [])


def assert_as_the_dict(snapshot: IndexSnapshot, names: list[str], serials: list[int | None] | None) -> None:
    expected = positions(names)
    assert snapshot.distinct == len(expected)
    live = sorted(expected.values())
    assert list(snapshot.projects()) == [(p, canonicalize_name(names[p])) for p in live]  # each once, in order
    for name in {*expected, *names, "absent", "DJANGO"}:
        assert snapshot.position_of(name) == expected.get(name)
        assert (name in snapshot) == (name in expected)
        at = expected.get(name)
        assert snapshot.serial_of(name) == (None if at is None or serials is None else serials[at])
    assert list(snapshot.listing.names) == names
    assert [snapshot.listing.names[i] for i in range(len(names))] == names


@pytest.mark.parametrize("seed", range(8))
def test_lookups_serials_and_counts_are_the_dicts(seed: int) -> None:
    rng = random.Random(seed)
    names = random_names(rng, 60, odd=seed % 2 == 1)
    serials = [None if rng.random() < 0.1 else rng.randrange(1, 10**6) for _ in names]
    assert_as_the_dict(snapshot_of(names, serials), names, serials)
    assert_as_the_dict(snapshot_of(names, None), names, None)


@pytest.mark.parametrize("bits", [0, 1, 3])
def test_hashes_that_collide_cost_a_comparison_not_a_wrong_answer(monkeypatch: pytest.MonkeyPatch, bits: int) -> None:
    # Every name in a few buckets (all in one with no bits): the lookup must tell them apart by the name itself.
    monkeypatch.setattr(compact, "_hash", lambda name: hash(name) & ((1 << bits) - 1))
    names = ["Alpha", "beta", "alpha", "Gamma.Ray", "gamma-ray", "delta", "BETA", "epsilon", "zeta_"]
    serials: list[int | None] = [1, 2, 3, 4, None, 6, 7, None, 9]
    snapshot = snapshot_of(names, serials)
    assert_as_the_dict(snapshot, names, serials)
    assert snapshot.serial_of("alpha") == 3 and snapshot.serial_of("beta") == 7  # the later listing answers
    assert snapshot.serial_of("gamma-ray") is None  # its later listing's serial is malformed
    assert snapshot.distinct == 6


def test_an_empty_index_and_a_one_project_index() -> None:
    assert_as_the_dict(snapshot_of([], []), [], [])
    assert_as_the_dict(snapshot_of(["Only_One"], [5]), ["Only_One"], [5])


def old_changes(old: IndexSnapshot, new: IndexSnapshot, old_names: list[str], new_names: list[str]) -> list[str]:
    """What _changes gave over the dicts: appeared, gone, or risen in serial."""
    before, after = positions(old_names), positions(new_names)
    changed = []
    for name in after:
        was, now = old.serial_of(name), new.serial_of(name)
        if name not in before or (now is not None and (was is None or now > was)):
            changed.append(name)
    return changed + [name for name in before if name not in after]


def edited(rng: random.Random, names: list[str], serials: list[int | None]) -> tuple[list[str], list[int | None]]:
    """Another copy: projects added, removed, moved, their serials risen, fallen or malformed."""
    pairs = list(zip(names, serials, strict=True))
    for _ in range(rng.randint(0, 6)):
        kind, at = rng.random(), rng.randrange(len(pairs) + 1)
        if kind < 0.3:
            pairs.insert(at, (f"new-{rng.randrange(10**6)}", rng.randrange(10**6)))
        elif kind < 0.5 and pairs:
            pairs.pop(min(at, len(pairs) - 1))
        elif kind < 0.6 and pairs:
            pairs.insert(at, pairs.pop(rng.randrange(len(pairs))))
        elif pairs:
            i = min(at, len(pairs) - 1)
            serial = pairs[i][1]
            pairs[i] = (pairs[i][0], None if kind < 0.7 else (serial or 0) + rng.randint(-3, 3))
    return [n for n, _ in pairs], [s for _, s in pairs]


@pytest.mark.parametrize("seed", range(24))
def test_changes_between_two_copies_are_the_dicts(seed: int) -> None:
    rng = random.Random(seed)
    names = sorted(set(random_names(rng, rng.choice((20, 300, 1500)), odd=seed % 5 == 0)))
    serials: list[int | None] = [rng.randrange(1, 10**6) for _ in names]
    new_names, new_serials = edited(rng, names, serials)
    old, new = snapshot_of(names, serials), snapshot_of(new_names, new_serials)
    changes = index_changes(old, new)
    assert len(changes) == len(set(changes))
    assert sorted(changes) == sorted(old_changes(old, new, names, new_names))
    assert index_changes(old, old) == []


def test_changes_from_or_to_a_copy_without_serials() -> None:
    names = ["a", "b", "c"]
    with_serials, without = snapshot_of(names, [1, 2, 3]), snapshot_of([*names, "d"], None)
    assert index_changes(with_serials, without) == old_changes(with_serials, without, names, [*names, "d"]) == ["d"]
    assert index_changes(without, with_serials) == ["a", "b", "c", "d"]


def assert_encoded_as_encode_value(names: list[str], serials: list[int | None], allow_i8: bool) -> None:
    snapshot = snapshot_of(names, serials)
    assert b"".join(names_answer(snapshot)) == b"".join(encode_value(names, allow_i8=allow_i8).chunks())
    struct = {name: serial for name, serial in zip(names, serials, strict=True) if serial is not None}
    assert b"".join(serials_answer(snapshot, allow_i8)) == b"".join(encode_value(struct, allow_i8=allow_i8).chunks())


@pytest.mark.parametrize("allow_i8", [False, True])
def test_whole_index_answers_are_encode_values_bytes(allow_i8: bool) -> None:
    rng = random.Random(15)
    for odd in (False, True):
        names = random_names(rng, 4500, odd)  # more than one chunk of names
        serials = [None if rng.random() < 0.05 else rng.randrange(0, 2**31) for _ in names]
        assert_encoded_as_encode_value(names, serials, allow_i8)
    assert_encoded_as_encode_value(ODD, [1, None, 2**31 - 1, 0, 3, 4, 5, 6, 7], allow_i8)
    assert_encoded_as_encode_value([], [], allow_i8)
    assert_encoded_as_encode_value(["dup", "Dup", "dup"], [1, 2, 3], allow_i8)  # a dict's order, the last value


def test_a_serial_beyond_32_bits_is_encode_values_error_or_an_i8() -> None:
    names, serials = ["a", "b", "c"], [1, 2**31, 2**40]
    snapshot = snapshot_of(names, list[int | None](serials))
    with pytest.raises(WireError) as expected:
        encode_value(dict(zip(names, serials, strict=True)))
    with pytest.raises(WireError) as ours:
        serials_answer(snapshot, False)  # before any chunk: the call's fault, not a cut answer
    assert str(ours.value) == str(expected.value) == "integer 2147483648 is outside the range the client can read"
    assert_encoded_as_encode_value(names, list[int | None](serials), True)


@pytest.mark.parametrize("seed", range(6))
def test_one_fields_best_hundred_is_the_full_rankings(seed: int) -> None:
    # Many matches, few distinct scores and lengths: the groups best() takes whole or sorts must give the same
    # hundred, in the same order, as ranking every match.
    rng = random.Random(seed)
    scores = FieldScores("name", 10_000)
    for _ in range(rng.randint(1, 3)):
        scores.add({"".join(rng.choices("ab-", k=rng.randint(1, 5))): rng.choice((0.5, 1.0)) for _ in range(400)})
    exact = set(rng.sample(sorted(scores.scores), 2)) | {"not-matched"}
    every = heapq.nsmallest(
        100, scores.scores, key=lambda name: (name not in exact, -scores.scores[name], len(name), name)
    )
    assert best([scores], exact, "and", 100) == every
    assert best([scores], exact, "or", 7) == every[:7]


@pytest.mark.parametrize("seed", range(6))
def test_the_serials_a_catalog_holds_read_back_against_the_index_are_its_rows(seed: int) -> None:
    # After a restart the refresher holds the catalog's serials as the Simple index plus where they differ: every
    # project answers the row's serial (None: no row), and every one that differs from the index is a candidate.
    rng = random.Random(seed)
    names = sorted({str(canonicalize_name(n)) for n in random_names(rng, 300, odd=False)})
    serials: list[int | None] = [None if rng.random() < 0.05 else rng.randrange(1, 1000) for _ in names]
    index = snapshot_of(names, serials)
    given = {n: rng.randrange(0, 1000) if rng.random() < 0.2 else s for n, s in zip(names, serials, strict=True)}
    rows = {n: s for n, s in given.items() if s is not None and rng.random() < 0.95} | {"only-held": 5}
    for against in (index, None):
        held = HeldSerials.of_rows(iter(rows.items()), against)
        assert {name: held.get(name) for name in [*names, "only-held"]} == {
            n: rows.get(n) for n in [*names, "only-held"]
        }
        differing = {n for n in [*names, "only-held"] if rows.get(n) != index.serial_of(n)}
        assert differing <= set(held.candidates(index))


def warehouse(projects: list[dict[str, object]], **dumps: object) -> bytes:
    return json.dumps({"meta": {"_last-serial": 99, "api-version": "1.1"}, "projects": projects}, **dumps).encode()  # type: ignore[arg-type]


def warehouse_compact(names: list[str], *after: str) -> bytes:
    """The index as Warehouse writes it (keys sorted, no white space), with `after` (raw text) at the list's end."""
    listed = json.dumps(
        [{"name": n, "_last-serial": i} for i, n in enumerate(names)], sort_keys=True, separators=(",", ":")
    )
    if after:
        listed = listed[:-1] + "," + "".join(after) + "]"
    return b'{"meta":{"_last-serial":99,"api-version":"1.1"},"projects":' + listed.encode() + b"}"


NAMES = [
    {"name": n, "_last-serial": i}
    for i, n in enumerate(["a", 'q"uote', "back\\slash", "caf\u00e9", "t\tab", "\U0001f40d"])
]
PLAIN = [
    warehouse(NAMES),
    warehouse(NAMES, separators=(",", ":")),
    warehouse(NAMES, indent=1),
    warehouse(NAMES, ensure_ascii=False),
    warehouse([]),
    warehouse([{"name": "big", "_last-serial": 2**63 - 1}, {"name": "zero", "_last-serial": 0}]),
    b'{"projects": [{"name": "x", "_last-serial": 3}], "meta": {"_last-serial": 4}}',
    warehouse(NAMES, sort_keys=True, separators=(",", ":")),  # as Warehouse writes it: `_last-serial` first
    warehouse([{"_last-serial": 1, "name": "swapped"}, {"name": "mixed", "_last-serial": 2}]),
    # Warehouse's compact form, around what would end or join its entries if read as bytes rather than as JSON.
    *(
        warehouse_compact(names)
        for names in (
            ["a]b", "c"],
            ['q"},{"_last-serial":9,"name":"x', "z"],
            ["\\", '\\"\\'],
            ["caf\u00e9", "\U0001f40d"],
        )
    ),
    b'{"projects":[{"_last-serial":1,"name":"a"},{"_last-serial":2,"name":"b"}],"meta":{"_last-serial":4}}',
    b'{"projects":[{"_last-serial":1,"name":"a"}],"meta":{"x":[{"_last-serial":3,"name":"c"}]}}',
    b'{"projects":[{"_last-serial":1,"name":"a"}, {"_last-serial":2,"name":"b"}]}',  # one space: read one by one
    b'{"meta":{"x":[{"_last-serial":1,"name":"a"}]},"projects":[{"_last-serial":2,"name":"b"}]}',
]
OTHER = [
    warehouse([{"name": "extra", "_last-serial": 1, "files": []}]),
    warehouse([{"_last-serial": 1, "name": "extra", "files": []}]),
    b'{"projects": [{"_last-serial": 1, "_last-serial": 2, "name": "twice"}]}',
    warehouse([{"name": "bad", "_last-serial": "12"}, {"name": "neg", "_last-serial": -1}]),
    warehouse([{"name": "float", "_last-serial": 1.0}, {"name": "huge", "_last-serial": 2**63}]),
    warehouse([{"name": "none"}]),
    warehouse([{"name": "-0.0e-31415", "_last-serial": 1}]),  # the stand-in itself, in a name
    b'{"projects": [{"name": "first", "_last-serial": 1}], "projects": [{"name": "last", "_last-serial": 2}]}',
    b'{"meta": {"projects": [{"name": "nested", "_last-serial": 1}]}, "projects": []}',
    b'{"meta": {"projects": [{"name": "n", "_last-serial": 1}]}, "projects": [{"name": "top", "_last-serial": 2}]}',
    b'{"proj\\u0065cts": [{"name": "escaped-key", "_last-serial": 1}]}',
    b'{"projects": [{"name": "open", "_last-serial": 1},',
    b'{"projects": [{"name": "lead", "_last-serial": 01}]}',
    b'{"projects": [{"name": "ctl\x01", "_last-serial": 1}]}',
    b'{"projects": [{"name": "\xff", "_last-serial": 1}]}',
    b'{"projects": [{"name": "x", "_last-serial": 1}]} trailing',
    b'[{"name": "x", "_last-serial": 1}]',
    b'{"projects": {"name": "x"}}',
    # The compact form with something else among its entries: never read as if it were not there.
    warehouse_compact(["a"], '{"_last-serial":2,"name":"b","x":1},', '{"_last-serial":3,"name":"c"}'),
    warehouse_compact(["a"], "5,", '{"_last-serial":3,"name":"c"}'),
    warehouse_compact(["a", "b"], '{"x":1}'),
    warehouse_compact(["a"], '{"_last-serial":2,"name":"b"}', '{"_last-serial":3,"name":"c"}'),  # no comma between two
    warehouse_compact(["a", "b"], ""),  # a comma after the last
    b'{"projects":[,{"_last-serial":1,"name":"a"}]}',
    b'{"meta":{"x":[{"_last-serial":1,"name":"a"}]},"projects":[{"_last-serial":2,"name":"b","x":1}]}',
    b'{"projects":[{"_last-serial":1,"name":"a"}],"meta":{"x":[{"_last-serial":3,"name":"c"}]',
]


def parsed(body: bytes) -> tuple[object, ...] | str:
    try:
        got = parse_simple_index(body, "application/vnd.pypi.simple.v1+json", 7)
    except ValueError as exc:
        return str(exc)
    serials = None if got.serials is None else list(got.serials)
    return list(got.names), serials, got.last_serial, got.malformed


@pytest.mark.parametrize("body", PLAIN + OTHER)
def test_the_plain_project_list_is_read_as_json_loads_reads_it(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (plain_projects(body) is not None) == (body in PLAIN)  # Warehouse's shape read without json.loads
    ours = parsed(body)
    monkeypatch.setattr(parsers, "plain_projects", lambda body: None)
    assert ours == parsed(body)


@pytest.mark.parametrize("body", [body for body in PLAIN if body.startswith(b'{"meta":{"_last-serial":99')])
def test_warehouses_compact_form_is_read_in_one_pass(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its entries matched all at once and checked to tile the list, not one match object each (2.5 s at the real
    # index's size, five times json.loads): with the entry by entry reading gone, it is read the same.
    read = plain_projects(body)
    monkeypatch.setattr(index_json, "_ENTRY", re.compile(rb"(?!)"))
    assert read is not None and plain_projects(body) == read


def gated_hash(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[str]]:
    """The lookup's hash held until the gate opens (five seconds at most: then the sorting fails); the threads it ran
    in, by name."""
    gate, threads = threading.Event(), []

    def held(name: str) -> int:
        threads.append(threading.current_thread().name)
        if not gate.wait(5):
            raise TimeoutError("the gate stayed shut")
        return hash(name)

    monkeypatch.setattr(compact, "_hash", held)
    return gate, threads


def fake_listing(fake: FakeIndex) -> list[dict[str, object]]:
    with TestClient(fake, base_url="https://upstream.test") as upstream:
        answer = upstream.get("/simple/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        projects: list[dict[str, object]] = answer.json()["projects"]
        return projects


def test_list_packages_answers_before_the_lookup_is_sorted_and_what_needs_it_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first copy of the index is answered from as soon as it is read: its lookup (half a second's sorting at the
    # real index's size) is not needed for list_packages, and a call that needs it waits for it.
    gate, _ = gated_hash(monkeypatch)
    fake = FakeIndex()
    projects = fake_listing(fake)
    with served(fake) as client:
        try:
            names = call(client, "list_packages")
        finally:
            gate.set()
        assert names == [project["name"] for project in projects]
        assert call(client, "list_packages_with_serial") == {p["name"]: p["_last-serial"] for p in projects}


def test_the_first_copys_lookup_is_sorted_in_a_worker_thread_without_a_call_asking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate, threads = gated_hash(monkeypatch)
    gate.set()
    with served(FakeIndex(), catalog_writer=False) as client:  # no refresher: nothing else reads the lookup
        assert "roundup" in call(client, "list_packages")
        snapshot = client.app.state.services.index.snapshot  # type: ignore[attr-defined]
        for _ in range(1000):  # its worker thread: bounded, so that a lookup never sorted fails the test
            if snapshot.lookup.built:
                break
            time.sleep(0.01)
        assert snapshot.lookup.built and threads
        assert all(name.startswith("asyncio_") for name in threads), threads  # the loop's worker threads


def test_threads_that_need_the_lookup_while_it_is_sorted_wait_for_that_one_sorting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate, threads = gated_hash(monkeypatch)
    names = ["Alpha", "beta", "alpha", "gamma"]
    snapshot = snapshot_of(names, [1, 2, 3, 4])  # not sorted yet: nothing hashed
    assert threads == []
    found: dict[str, int | None] = {}
    askers = [threading.Thread(target=lambda n=n: found.update({n: snapshot.serial_of(n)})) for n in ("alpha", "beta")]
    for asker in askers:
        asker.start()
    for _ in range(5000):  # the first is sorting (held at the gate); the other waits for it
        if threads:
            break
        time.sleep(0.001)
    gate.set()
    for asker in askers:
        asker.join(10)
    assert found == {"alpha": 3, "beta": 2}
    assert len(threads) == len(names) + 2  # every name hashed once, then each name asked for
    assert_as_the_dict(snapshot, names, [1, 2, 3, 4])
