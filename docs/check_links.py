"""Check the built site's local links: every ``href`` and ``src`` of every page that points inside the site must name
a file that exists, and a ``#fragment`` an ``id`` on that page. External links are listed, not fetched (the build
machine may have no network).

    python docs/check_links.py docs/_build/html     # exit 1 and one line per broken link
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src") and value:
                self.links.append(value)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(errors="replace"))
    return page


def broken_links(site: Path) -> tuple[list[str], int, int]:
    """``(broken, checked, external)`` over every HTML page of ``site``."""
    pages = {p: _parse(p) for p in site.rglob("*.html") if not {"_static", "_sources"} & set(p.relative_to(site).parts)}
    broken, checked, external = [], 0, 0
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                external += parts.scheme in ("http", "https")
                continue
            checked += 1
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.relative_to(site)}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.relative_to(site)}: {link} (no id {parts.fragment!r} there)")
    return broken, checked, external


def main(argv: list[str]) -> int:
    site = Path(argv[0] if argv else "docs/_build/html")
    if not (site / "index.html").exists():
        print(f"check_links: {site} holds no built site (index.html); build it first", file=sys.stderr)
        return 2
    broken, checked, external = broken_links(site)
    for line in broken:
        print(line, file=sys.stderr)
    print(f"{checked} local links checked, {len(broken)} broken; {external} external links not fetched")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
