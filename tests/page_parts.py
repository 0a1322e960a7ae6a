"""Read a report page back with the standard library's HTML parser: its tables (by title),
images (decoded from their data URIs) and text, so tests check structure, not substrings."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import numpy as np


class PageParts(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._heading = ""
        self._in: list[str] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in.append(tag)
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})
            self._in.pop()
        elif tag == "h2":
            self._heading = ""
        elif tag == "tr":
            self.tables.setdefault(self._heading, []).append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._heading][-1].append("".join(self._cell))
            self._cell = None
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in and self._in[-1] == "h2":
            self._heading += data
        if self._cell is not None:
            self._cell.append(data)


def decode_png(src: str) -> np.ndarray:
    """The pixels of a data:image/png;base64 URI."""
    from PIL import Image

    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src[len(prefix):]))))
