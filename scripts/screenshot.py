"""Regenerate the README's picture of the status page (docs/status-page.png).

    python scripts/screenshot.py [--out docs/status-page.png] [--width 1200] [--height 1500]

Run from the repository's root. It serves the fake index (testkit/fakeindex) on 127.0.0.1, starts the
`pypi-xmlrpc-shim` command over it, makes a few calls as several clients would (testkit/agents.py), and takes a
screenshot of `GET /` in Debian's headless Chromium (testkit/chromium.py; `apt-get install chromium`). Nothing
leaves the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testkit.agents import a_few_calls  # noqa: E402
from testkit.chromium import chromium, find_chromium  # noqa: E402
from testkit.fakeindex import FakeIndex  # noqa: E402
from testkit.servers import serve_in_thread  # noqa: E402
from testkit.shimprocess import command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "status-page.png")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1500)
    args = parser.parse_args(argv)
    executable = find_chromium()
    if executable is None:
        print("screenshot: no Chromium (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="shim-screenshot-") as scratch:
        folder = Path(scratch)
        fake = FakeIndex()
        with serve_in_thread(fake) as index_url:
            fake.set_urls(index_url + "/")
            settings = {"SHIM_UPSTREAM": index_url + "/", "SHIM_CATALOG_PATH": str(folder / "catalog.sqlite3")}
            with command(settings) as running:
                a_few_calls(running.base)
                with chromium(executable, folder) as browser:
                    page = browser.new_page()
                    page.size(args.width, args.height)
                    page.goto(running.base + "/")
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
