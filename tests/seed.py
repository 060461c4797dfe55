"""The seed example, field for field: what PyPI answered for roundup 1.6.0 (spec §4.2), as the fake index serves it."""

from __future__ import annotations

# The seed example: release_urls('roundup', '1.6.0'), field for field.
ROUNDUP_160_URLS = [
    {
        "filename": "roundup-1.6.0.tar.gz",
        "packagetype": "sdist",
        "python_version": "source",
        "size": 2893499,
        "md5_digest": "54d587da7c3d9c83f13d04674cacdc2a",
        "sha256_digest": "1814c74b40c4a6287e0a97b810f6adc6a3312168201eaa0badd1dd8c216b1bcb",
        "digests": {
            "md5": "54d587da7c3d9c83f13d04674cacdc2a",
            "sha256": "1814c74b40c4a6287e0a97b810f6adc6a3312168201eaa0badd1dd8c216b1bcb",
        },
        "has_sig": False,
        "upload_time": "2018-07-13T11:30:36.405653Z",
        "upload_time_iso_8601": "2018-07-13T11:30:36.405653Z",
        "comment_text": None,
        "downloads": -1,
        "path": "f0/07/6f4e2164ed82dfff873ee55181f782926bcb4a29f6a83fe4f8b9cbf5489c/roundup-1.6.0.tar.gz",
        "url": "https://files.upstream.test/packages/f0/07/6f4e2164ed82dfff873ee55181f782926bcb4a29f6a83fe4f8b9cbf5489c/"
        "roundup-1.6.0.tar.gz",
    }
]

ROUNDUP_160_DATA = {
    "name": "roundup",
    "version": "1.6.0",
    "stable_version": None,
    "bugtrack_url": None,
    "package_url": "https://upstream.test/project/roundup/",
    "release_url": "https://upstream.test/project/roundup/1.6.0/",
    "docs_url": None,
    "home_page": "http://www.roundup-tracker.org",
    "download_url": None,
    "project_url": [],
    "author": "Richard Jones",
    "author_email": "richard@users.sourceforge.net",
    "maintainer": None,
    "maintainer_email": None,
    "summary": "A simple-to-use and -install issue-tracking system.",
    "description": None,
    "license": "MIT",
    "keywords": None,
    "platform": None,
    "classifiers": ["Programming Language :: Python :: 2"],
    "requires": [],
    "requires_dist": [],
    "provides": [],
    "provides_dist": [],
    "obsoletes": [],
    "obsoletes_dist": [],
    "requires_python": None,
    "requires_external": [],
    "_pypi_ordering": 1,
    "downloads": {"last_day": -1, "last_week": -1, "last_month": -1},
    "cheesecake_code_kwalitee_id": None,
    "cheesecake_documentation_id": None,
    "cheesecake_installability_id": None,
}
