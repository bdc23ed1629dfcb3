"""The shell command blocks of README.md and docs/*.md, with the marker line above each."""

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHELLS = {"bash", "sh", "shell", "console", "zsh"}
FENCE = re.compile(r"^```\s*([\w-]*)\s*$")
NOT_RUN = re.compile(r"^<!-- not run: (.*?) -->$")
RUN = re.compile(r"^<!-- run: (.*?) -->$")
DEMO_OUTPUTS = "demo outputs"  # run in a folder laid out like a clone after `bash run.sh demo`


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, from 1
    language: str
    above: str  # the nearest non-blank line above the fence
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def not_run(self) -> str | None:
        """The reason given for not running it, or None when it is not marked so."""
        found = NOT_RUN.match(self.above)
        return found.group(1).strip() if found else None

    @property
    def run(self) -> str | None:
        found = RUN.match(self.above)
        return found.group(1).strip() if found else None


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order."""
    lines = path.read_text().splitlines()
    found, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        above = next((ln.strip() for ln in reversed(lines[:index]) if ln.strip()), "")
        text = "\n".join(lines[index + 1 : end]) + "\n"
        found.append(Block(path, index + 1, opening.group(1).lower(), above, text))
        index = end + 1
    return found


def shell_blocks() -> list[Block]:
    return [b for path in documents() for b in fenced_blocks(path) if b.language in SHELLS]
