"""A self-contained HTML report: one ``report.html`` with its PNGs beside it, linked relatively.

The folder can be moved, zipped or opened from a file manager: nothing is fetched from anywhere and
no script runs. Use::

    report = Report(folder, "title")
    report.section("Input", "one paragraph of text")
    report.figures([("caption", uint8_image), ...])      # a row of pictures, each saved as a PNG
    report.table(["method", "score"], [["naive", "62.1"]])
    path = report.save()                                  # -> folder / "report.html"
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import numpy as np

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em;
       color: #222; background: #fafafa; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em;
     border-bottom: 1px solid #ccc; }
p.note { color: #555; }
.row { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figcaption { font-size: 0.9em; color: #444; max-width: 20em; }
img { image-rendering: pixelated; background: #000; display: block; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 0.2em 0.7em; border: 1px solid #ddd; }
th { background: #eee; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { background: #eee; padding: 0 0.2em; } pre { padding: 0.6em; overflow-x: auto; }
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "figure"


class Report:
    """An HTML page under construction; pictures are written to ``folder`` as they are added."""

    def __init__(self, folder: str | os.PathLike, title: str, scale: int = 2):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.scale = scale  # pictures are shown this many times their pixel size (nearest neighbour)
        self._parts: list[str] = []
        self._names: set[str] = set()
        self.images: list[Path] = []  # every PNG written

    def section(self, heading: str, text: str | None = None) -> None:
        self._parts.append(f"<h2>{html.escape(heading)}</h2>")
        if text:
            self.paragraph(text)

    def paragraph(self, text: str, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def code(self, text: str) -> None:
        self._parts.append(f"<pre>{html.escape(text)}</pre>")

    def _save_png(self, stem: str, image: np.ndarray) -> str:
        from PIL import Image

        from .io.atomic import atomic_write

        base = _slug(stem)[:40]
        name, k = f"{base}.png", 1
        while name in self._names:
            k += 1
            name = f"{base}_{k}.png"
        self._names.add(name)
        with atomic_write(self.folder / name, "wb") as fh:
            Image.fromarray(np.ascontiguousarray(image)).save(fh, format="PNG")
        self.images.append(self.folder / name)
        return name

    def figures(self, items: list[tuple]) -> None:
        """A row of captioned pictures: ``(caption, image)`` or ``(caption, image, file stem)``, each
        image uint8 [H, W, 3] (or [H, W]); the file is named after the stem (else the caption)."""
        cells = []
        for caption, image, *stem in items:
            name = self._save_png(stem[0] if stem else caption, image)
            h, w = image.shape[:2]
            cells.append(f'<figure><img src="{html.escape(name)}" width="{w * self.scale}" '
                         f'height="{h * self.scale}" alt="{html.escape(caption)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        self._parts.append('<div class="row">' + "".join(cells) + "</div>")

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        def cell(value: str, tag: str) -> str:
            num = tag == "td" and re.fullmatch(r"[-+]?[\d.,]+( ?[a-zA-Z%]+)?|-", value) is not None
            return f'<{tag}{" class=num" if num else ""}>{html.escape(value)}</{tag}>'

        head = "<tr>" + "".join(cell(h, "th") for h in header) + "</tr>"
        body = "".join("<tr>" + "".join(cell(str(v), "td") for v in r) + "</tr>" for r in rows)
        self._parts.append(f"<table>{head}{body}</table>")

    def save(self, name: str = "report.html") -> Path:
        from .io.atomic import write_text

        page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>\n<body>"
                f"<h1>{html.escape(self.title)}</h1>\n" + "\n".join(self._parts) + "\n</body></html>\n")
        path = self.folder / name
        write_text(path, page)
        return path
