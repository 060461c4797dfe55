"""Where the fake says it lives: the index's base URL and the file host's URL, used in every rendered URL."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from .state import FileRecord, Project

DEFAULT_BASE_URL = "https://upstream.test/"
DEFAULT_FILES_URL = "https://files.upstream.test/"


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True)
class Urls:
    base_url: str = DEFAULT_BASE_URL
    files_url: str = DEFAULT_FILES_URL

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", _slash(self.base_url))
        object.__setattr__(self, "files_url", _slash(self.files_url))

    def index(self, path: str = "") -> str:
        return self.base_url + path

    def file_url(self, file: FileRecord) -> str:
        """The URL as rendered: an explicit (maybe relative) URL wins, else `<files_url>packages/<path>`."""
        if file.url is not None:
            return file.url
        if file.path is None:
            raise ValueError(f"File {file.filename!r} has neither `path` nor `url`.")
        return f"{self.files_url}packages/{file.path}"

    def absolute_file_url(self, project: Project, file: FileRecord) -> str:
        """Where a client ends up: relative URLs resolve against the project's Simple page."""
        return urljoin(self.index(f"simple/{project.normalized}/"), self.file_url(file))

    @property
    def separate_files_host(self) -> bool:
        return urlsplit(self.files_url).netloc != urlsplit(self.base_url).netloc

    @property
    def files_netloc(self) -> str:
        return urlsplit(self.files_url).netloc


def netloc_path(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.netloc.lower(), parts.path
