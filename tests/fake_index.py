"""Import point for the fake upstream index: `from tests.fake_index import FakeIndex`."""

from tests.fakeindex import (
    DEFAULT_BASE_URL,
    DEFAULT_FILES_URL,
    FIXTURES,
    FakeIndex,
    FileRecord,
    IndexState,
    LoggedRequest,
    Project,
    Release,
    Urls,
    load_project,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_FILES_URL",
    "FIXTURES",
    "FakeIndex",
    "FileRecord",
    "IndexState",
    "LoggedRequest",
    "Project",
    "Release",
    "Urls",
    "load_project",
]
