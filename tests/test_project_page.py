"""`GET`/`HEAD /pypi/<name>/`, the project page as legacy PyPI answered it: 200 for the name as the service spells
it, a 301 to `/pypi/<normalised name>` (no trailing slash: vanity takes the name from the Location's last segment)
for another spelling of a listed project, 404 for any other name. Listed means the Simple index lists it."""

from __future__ import annotations

import pytest

from testkit.fakeindex import FakeIndex

from .helpers import refresh_index, served, upstream_paths

ANSWERS = [
    ("/pypi/roundup/", 200, None),
    ("/pypi/Roundup/", 301, "/pypi/roundup"),
    ("/pypi/Zope.Interface_Demo/", 301, "/pypi/zope-interface-demo"),
    ("/pypi/zope-interface-demo/", 200, None),
    ("/today/pypi/ROUNDUP/", 301, "/today/pypi/roundup"),
    ("/restore/pypi/roundup/", 200, None),
    ("/pypi/no-such-project/", 404, None),
    ("/pypi/No_Such.Project/", 404, None),  # another spelling of an unknown name is no redirect
    ("/pypi/-not-a-name-/", 404, None),
    ("/pypi/roundup", 200, None),  # where the 301s point: a client that follows one lands on the page
    ("/pypi/ROUNDUP", 301, "/pypi/roundup"),
    ("/pypi/no-such-project", 404, None),
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(("path", "status", "location"), ANSWERS)
def test_the_project_page_answers_as_legacy_pypi_did(method: str, path: str, status: int, location: str | None) -> None:
    fake = FakeIndex()
    with served(fake) as client:
        refresh_index(client)
        response = client.request(method, path, follow_redirects=False)
    assert response.status_code == status
    assert response.headers.get("location") == (None if location is None else "http://testserver" + location)
    assert upstream_paths(fake) == []  # answered from the Simple index alone


def test_the_project_page_links_the_projects_documents() -> None:
    with served(FakeIndex()) as client:
        refresh_index(client)
        page = client.get("/pypi/roundup/")
        links = [client.get("/pypi/roundup/" + href) for href in ("json", "../../simple/roundup/")]
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert 'href="json"' in page.text and 'href="../../simple/roundup/"' in page.text
    assert [link.status_code for link in links] == [200, 200]


def test_without_a_simple_index_the_project_page_asks_the_upstreams_json() -> None:
    fake = FakeIndex()
    fake.fail("/simple/", status=503)  # nothing says which names exist
    with served(fake) as client:
        answers = [client.get(path, follow_redirects=False) for path in ("/pypi/Roundup/", "/pypi/no-such-project/")]
    assert [(a.status_code, a.headers.get("location")) for a in answers] == [
        (301, "http://testserver/pypi/roundup"),
        (404, None),
    ]
    assert upstream_paths(fake) == ["/pypi/roundup/json", "/pypi/no-such-project/json"]


def test_the_project_page_is_502_when_the_upstream_cannot_say() -> None:
    fake = FakeIndex()
    fake.fail("/simple/", status=503)
    fake.fail("/pypi/*", status=503)
    with served(fake, upstream_retries=0) as client:
        response = client.get("/pypi/roundup/")
    assert (response.status_code, response.text) == (502, "502 Bad Gateway: the upstream index did not answer.")


def test_a_client_that_follows_the_redirect_lands_on_the_page() -> None:
    with served(FakeIndex()) as client:
        refresh_index(client)
        response = client.get("/pypi/Zope.Interface_Demo/")
    assert [r.status_code for r in response.history] == [301]
    assert (response.status_code, str(response.url)) == (200, "http://testserver/pypi/zope-interface-demo")
