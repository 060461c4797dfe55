"""The benchmark's comparison servers, each run as its own process, answering the calls in an answers file.

    python -m testkit.benchservers bare|parse|stdlib ANSWERS.json     print the base URL, serve until stdin closes

- bare: Starlette on uvicorn, every POST answered with the first call's answer bytes (the server's ceiling);
- parse: Starlette on uvicorn, `xmlrpc.client.loads(body)` and then the cached answer bytes for that method and
  params (the least any Python XML-RPC endpoint must do);
- stdlib: the standard library's threaded `SimpleXMLRPCServer` (socketserver.ThreadingMixIn), package_releases
  from a dict (what a user would write in an afternoon).

The two uvicorn ones use the server settings the service's command uses: httptools, and the loop uvicorn picks
("auto": uvloop when installed); no access log.
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
import xmlrpc.client
from pathlib import Path
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["KINDS", "Call", "read_answers", "write_answers"]

KINDS = ("bare", "parse", "stdlib")
PATH = "/pypi"
XML = "text/xml"

Call = tuple[str, tuple[Any, ...], bytes]  # method, params, the answer's bytes


def write_answers(path: Path, calls: list[Call]) -> None:
    document = [{"method": m, "params": list(p), "answer": a.decode("utf-8")} for m, p, a in calls]
    path.write_text(json.dumps(document), encoding="utf-8")


def read_answers(path: Path) -> list[Call]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return [(c["method"], tuple(c["params"]), c["answer"].encode("utf-8")) for c in document]


def _unknown(method: str) -> bytes:
    return xmlrpc.client.dumps(
        xmlrpc.client.Fault(-32601, f"no cached answer for {method}"), methodresponse=True
    ).encode()


def bare_app(calls: list[Call]) -> Starlette:
    answer = calls[0][2]

    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(answer, media_type=XML)

    return Starlette(routes=[Route(PATH, endpoint, methods=["POST"])])


def parse_app(calls: list[Call]) -> Starlette:
    cached = {(m, repr(p)): a for m, p, a in calls}

    async def endpoint(request: Request) -> Response:
        params, method = xmlrpc.client.loads(await request.body())
        answer = cached.get((method or "", repr(params)))
        return Response(answer if answer is not None else _unknown(method or ""), media_type=XML)

    return Starlette(routes=[Route(PATH, endpoint, methods=["POST"])])


class ThreadedXMLRPCServer(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = (PATH, "/RPC2", "/")


def stdlib_server(calls: list[Call]) -> ThreadedXMLRPCServer:
    releases = {p[0]: xmlrpc.client.loads(a)[0][0] for m, p, a in calls if m == "package_releases"}
    server = ThreadedXMLRPCServer(("127.0.0.1", 0), requestHandler=_Handler, logRequests=False, allow_none=True)

    def package_releases(name: Any, show_hidden: Any = False) -> Any:
        return releases.get(name, [])

    server.register_function(package_releases)
    return server


def _serve_uvicorn(app: Starlette) -> None:
    # IPPROTO_TCP named, as getaddrinfo gives it to the service's own socket: asyncio sets TCP_NODELAY only on
    # such sockets' connections (else Nagle holds the body behind the head for a delayed ACK: 40 ms a call).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http="httptools", lifespan="off", access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    sock.listen(2048)  # connections wait in the backlog until uvicorn serves: the URL is good once printed
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    _stop_on_eof(lambda: setattr(server, "should_exit", True))
    server.run(sockets=[sock])


def _stop_on_eof(stop: Any) -> None:
    def watch() -> None:
        sys.stdin.read()
        stop()

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in KINDS:
        print(f"usage: python -m testkit.benchservers {'|'.join(KINDS)} ANSWERS.json", file=sys.stderr)
        return 2
    calls = read_answers(Path(args[1]))
    if args[0] == "stdlib":
        server = stdlib_server(calls)
        print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
        _stop_on_eof(server.shutdown)
        server.serve_forever()
        return 0
    _serve_uvicorn(bare_app(calls) if args[0] == "bare" else parse_app(calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
