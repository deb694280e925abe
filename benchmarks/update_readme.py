"""Regenerates the README's result sections from benchmarks/results/*.md (never typed by hand).

Each section sits between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` markers and is
replaced by the content of ``benchmarks/results/NAME.md`` when that file exists.

    python -m benchmarks.update_readme
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()

    def fill(m: re.Match) -> str:
        name = m.group(1)
        src = ROOT / "benchmarks" / "results" / f"{name}.md"
        body = src.read_text().strip() if src.is_file() else "_not measured yet_"
        return f"<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->"

    new = re.sub(r"<!-- results:([\w\-/]+) -->.*?<!-- /results:\1 -->", fill, text, flags=re.S)
    readme.write_text(new)
    print("README result sections updated")


if __name__ == "__main__":
    main()
