"""Reading rendered pages back the way a browser's parser would (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Page:
    ids: list[str] = field(default_factory=list)
    tags: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    section_text: dict[str, str] = field(default_factory=dict)
    svg_text: list[str] = field(default_factory=list)
    text: str = ""

    def attrs(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._section: list[str | None] = []
        self._in_svg_text = 0
        self._chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.page.tags.append((tag, a))
        if a.get("id"):
            self.page.ids.append(str(a["id"]))
        if tag == "section":
            self._section.append(a.get("id"))
            if a.get("id"):
                self.page.section_text.setdefault(str(a["id"]), "")
        if tag == "text":
            self._in_svg_text += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self._section:
            self._section.pop()
        if tag == "text" and self._in_svg_text:
            self._in_svg_text -= 1

    def handle_data(self, data: str) -> None:
        self._chunks.append(data)
        for sid in self._section:
            if sid:
                self.page.section_text[sid] += data
        if self._in_svg_text:
            self.page.svg_text.append(data)


def parse(html: str) -> Page:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    parser.page.text = "".join(parser._chunks)
    return parser.page
