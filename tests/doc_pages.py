"""The documentation's pages and their fenced code blocks, as the doc tests read them."""

from pathlib import Path

ROOT = Path(__file__).parent.parent


def pages() -> list[Path]:
    """The README and every Markdown page of docs/ (not what a build writes)."""
    docs = [p for p in sorted((ROOT / "docs").rglob("*.md")) if not {"_build", "auto_examples"} & set(p.parts)]
    return [ROOT / "README.md", *docs]


def code_blocks(langs: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(page:line, code)`` of every fenced block whose language is one of ``langs`` ("" for none given)."""
    found = []
    for page in pages():
        lang, start, lines = None, 0, []
        for i, line in enumerate(page.read_text().splitlines(), 1):
            if line.startswith("```"):
                if lang is None:
                    lang, start, lines = line[3:].strip(), i, []
                else:
                    if lang in langs:
                        found.append((f"{page.relative_to(ROOT)}:{start}", "\n".join(lines)))
                    lang = None
            elif lang is not None:
                lines.append(line)
    return found
