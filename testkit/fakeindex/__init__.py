"""A fake package index that answers like Warehouse's JSON, Simple and RSS APIs, for the shim's tests."""

from .app import FIXTURES, FakeIndex, LoggedRequest
from .state import FileRecord, IndexState, Project, Release, load_project
from .urls import DEFAULT_BASE_URL, DEFAULT_FILES_URL, Urls

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
