"""Regenerates the result sections of the documentation (``docs/*.md``, ``README.md``) from
benchmarks/results/*.md (never typed by hand).

Each section sits between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` markers and is
replaced by the content of ``benchmarks/results/NAME.md`` when that file exists.

    python -m benchmarks.update_readme
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        fill_page(page)
    print("result sections of README.md and docs/*.md updated")


def fill_page(page: Path) -> None:
    text = page.read_text()

    def fill(m: re.Match) -> str:
        name = m.group(1)
        src = ROOT / "benchmarks" / "results" / f"{name}.md"
        body = src.read_text().strip() if src.is_file() else "_not measured yet_"
        return f"<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->"

    new = re.sub(r"<!-- results:([\w\-/]+) -->.*?<!-- /results:\1 -->", fill, text, flags=re.S)
    if new != text:
        page.write_text(new)


if __name__ == "__main__":
    main()
