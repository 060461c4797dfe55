"""A generated upstream the size of the real index (927,088 projects by default), for the benchmark.

Names are drawn from a seeded generator (the same names for the same seed and size, on any machine): common words
joined by hyphens, underscores, dots or nothing, in lower, title, camel or upper case, some with digits, 2 to 60
characters, unique once normalised; a search for "django" or "py" has many hits, one for RARE_WORD a handful. The
fixture projects (testkit/fixtures/index) are among them with their own serials. The Simple index is rendered
once as PEP 691 JSON bytes (and gzipped once, served when asked for, as the real index does); every other path goes
to a FakeIndex whose state also answers the JSON API for each generated project (one release, "1.0", no files).

    python -m testkit.bigindex [--projects N] [--seed S]     serve on 127.0.0.1; print the base URL; stop on EOF
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import random
import re
import sys
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import uvicorn
from starlette.types import Receive, Scope, Send

from .fakeindex import FIXTURES, FakeIndex, IndexState, Project, Release
from .fakeindex.render_simple import V1_JSON, negotiate
from .fakeindex.replies import etag_matches
from .fakeindex.state import full_info
from .servers import serving_config

__all__ = ["COMMON_WORDS", "PUBLIC_SIZE", "RARE_WORD", "BigIndex", "generate_names", "normalize", "serve_big"]

PUBLIC_SIZE = 927_088  # projects on the real index when issue 15 was measured
RARE_WORD = "quokka"  # in RARE_COUNT generated names, and in no other
RARE_COUNT = 5
# Words PyPI's names are made of, most frequent first: the first ones come up far more often (a Zipf-like draw).
_WORDS = (
    "py python django test flask api client tools utils lib data sdk cli plugin aws core pytest odoo addon web "
    "async json http cloud azure google parser simple ml model server kit sphinx theme db sql redis auth config "
    "tf torch graph text log file image bot chat openai llm framework manager package easy fast mini my super "
    "types stubs wrapper extension backend admin rest rpc xml yaml toml grpc kafka mongo postgres mysql celery "
    "docker k8s jupyter notebook pandas numpy scipy plot vision audio net crypto hash time date queue cache"
)
COMMON_WORDS = tuple(_WORDS.split())
_SYLLABLES = tuple(c + v for c in "bdklmnrstvz" for v in "aeiou")
_SEPARATORS = ("-", "-", "-", "-", "-", "-", "_", "_", "_", ".", "")
_DASHES = str.maketrans("_.", "--")
_RUNS = re.compile(r"-{2,}")
_PLAIN = re.compile(r"[A-Za-z0-9._-]*")  # nothing JSON escapes
_CREATED = dt.datetime(2020, 1, 1)


def normalize(name: str) -> str:
    """PEP 503's normalised form (packaging's canonicalize_name, without its validation)."""
    key = name.translate(_DASHES).lower()
    return _RUNS.sub("-", key) if "--" in key else key


class _Draw:
    """Names drawn from one seeded generator: indexing by `random()` rather than `choice` (a million names)."""

    def __init__(self, seed: int, count: int) -> None:
        self.rng = random.Random(seed)
        self.pick = self.rng.random
        # Made-up words (a project's own name: "requests", "boto"), drawn once, each used by a few names.
        words = max(200, count // 15)
        self.made_up = ["".join(self.one(_SYLLABLES) for _ in range(1 + int(self.pick() * 4))) for _ in range(words)]

    def one(self, items: Sequence[str]) -> str:
        return items[int(self.pick() * len(items))]

    def token(self) -> str:
        if self.pick() < 0.6:  # a common word, the first ones most often
            return COMMON_WORDS[int(len(COMMON_WORDS) * self.pick() ** 2.5)]
        return self.one(self.made_up)

    def cased(self, parts: list[str]) -> list[str]:
        draw = self.pick()
        if draw < 0.8:
            return parts
        if draw < 0.9:
            return [p.title() for p in parts]
        if draw < 0.97:
            return [parts[0], *(p.title() for p in parts[1:])]
        return [p.upper() for p in parts]

    def name(self) -> str:
        count = (1, 2, 2, 2, 3, 3, 4)[int(self.pick() * 7)] if self.pick() < 0.99 else 5 + int(self.pick() * 6)
        parts = [self.token() for _ in range(count)]
        if self.pick() < 0.15:
            parts.append(str(int(self.pick() * 2030)))
        name = self.one(_SEPARATORS).join(self.cased(parts))
        if len(name) > 60:
            name = name[:60].rstrip("-_.")
        return name if len(name) >= 2 else name + "x"


def generate_names(count: int, seed: int = 0, *, reserved: tuple[str, ...] = ()) -> list[str]:
    """`count` unique (normalised) display names, `reserved` among them, RARE_WORD in RARE_COUNT of them."""
    draw = _Draw(seed, count)
    names = list(reserved)
    seen = {normalize(n) for n in names}
    for i in range(min(RARE_COUNT, max(0, count - len(names)))):
        name = f"{draw.token()}-{RARE_WORD}" if i % 2 else f"{RARE_WORD}{'-_.-'[i % 4]}{draw.token()}"
        if normalize(name) not in seen:
            seen.add(normalize(name))
            names.append(name)
    while len(names) < count:
        name = draw.name()
        key = normalize(name)
        if key not in seen and RARE_WORD not in key:
            seen.add(key)
            names.append(name)
    return names


def _quoted(name: str) -> str:
    return f'"{name}"' if _PLAIN.fullmatch(name) else json.dumps(name, ensure_ascii=False)


class GeneratedState(IndexState):
    """The fixtures' projects, and each generated one made up when asked for: one release, 1.0, no files."""

    def __init__(self, base: IndexState, keys: list[str], names: list[str], serials: list[int]) -> None:
        super().__init__(base.projects.values())
        self._keys, self._names, self._serials = keys, names, serials
        self.serial = max(self.serial, max(serials, default=0))

    def get(self, name: str) -> Project | None:
        found = super().get(name)
        if found is not None:
            return found
        key = normalize(name)
        i = bisect_left(self._keys, key)
        if i == len(self._keys) or self._keys[i] != key:
            return None
        display = self._names[i]
        info = full_info({"summary": f"The {display} project, generated for the benchmark"})
        release = Release(version="1.0", created=_CREATED, info=info)
        return Project(name=display, last_serial=self._serials[i], created=_CREATED, releases=[release])


class BigIndex:
    """The ASGI app: GET/HEAD /simple/ from the pre-rendered bytes, everything else from a FakeIndex."""

    def __init__(self, projects: int = PUBLIC_SIZE, *, seed: int = 0) -> None:
        base = IndexState.load(FIXTURES)
        fixtures = {normalize(p.name): p for p in base.projects.values() if not p.quarantined}
        drawn = generate_names(projects, seed, reserved=tuple(p.name for p in fixtures.values()))
        rng = random.Random(seed + 1)
        keyed = sorted((normalize(n), n) for n in drawn)
        keys, ordered = [k for k, _ in keyed], [n for _, n in keyed]
        top = 30 * len(ordered) + 1000  # the real index's serials run to about 30 per project
        serials = sorted(rng.sample(range(1000, top), len(ordered)))
        rng.shuffle(serials)  # each project last changed at some point: not in name order
        for i, name in enumerate(ordered):
            fixture = fixtures.get(normalize(name))
            if fixture is not None:
                serials[i] = fixture.last_serial
        self.names = ordered
        self.serials = serials
        self.last_serial = max(serials, default=0)
        self.fake = FakeIndex(GeneratedState(base, keys, ordered, serials))
        self.body = self._render()
        self.gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        self.etag = '"' + hashlib.md5(self.body).hexdigest() + '"'

    def _render(self) -> bytes:
        # As Warehouse renders it: sorted keys, compact separators, a trailing newline; built as text (a million
        # dicts through json.dumps take seconds).
        entries = ",".join(
            f'{{"_last-serial":{s},"name":{_quoted(n)}}}' for n, s in zip(self.names, self.serials, strict=True)
        )
        meta = f'{{"_last-serial":{self.last_serial},"api-version":"1.1"}}'
        return f'{{"meta":{meta},"projects":[{entries}]}}\n'.encode()

    def set_urls(self, base_url: str) -> None:
        self.fake.set_urls(base_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/simple/" and scope["method"] in ("GET", "HEAD"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if negotiate(headers.get("accept")) == V1_JSON:
                await self._index(scope["method"], headers, send)
                return
        await self.fake(scope, receive, send)

    async def _index(self, method: str, headers: dict[str, str], send: Send) -> None:
        answer = [
            (b"content-type", V1_JSON.encode()),
            (b"etag", self.etag.encode()),
            (b"x-pypi-last-serial", str(self.last_serial).encode()),
            (b"vary", b"Accept, Accept-Encoding"),
            (b"cache-control", b"max-age=600, public"),
        ]
        if_none_match = headers.get("if-none-match")
        if if_none_match and etag_matches(if_none_match, self.etag):
            await send({"type": "http.response.start", "status": 304, "headers": answer})
            await send({"type": "http.response.body", "body": b""})
            return
        body = self.body
        if "gzip" in headers.get("accept-encoding", "").lower():
            body = self.gzipped
            answer.append((b"content-encoding", b"gzip"))
        answer.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": answer})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


@contextmanager
def serve_big(projects: int = PUBLIC_SIZE, *, seed: int = 0) -> Iterator[tuple[str, BigIndex]]:
    """Serve a BigIndex on 127.0.0.1 in a thread; yield its base URL (trailing slash) and the index."""
    index = BigIndex(projects, seed=seed)
    config = uvicorn.Config(index, log_level="warning", lifespan="off", access_log=False)
    with serving_config(config) as served:
        index.set_urls(served.url + "/")
        yield served.url + "/", index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testkit.bigindex", description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=PUBLIC_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with serve_big(args.projects, seed=args.seed) as (url, _):
        print(url, flush=True)
        sys.stdin.read()  # served until the parent closes our stdin (or ends)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
