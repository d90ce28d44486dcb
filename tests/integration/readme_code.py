"""The code of a Markdown document, as a reader would copy it: fenced blocks and prose commands.

A ```sh block is a list of shell commands: one per line, a line ending in ``\\`` continued on
the next, a ``#`` outside quotes starting a comment. A ```python block is one snippet. An
untagged block is a diagram. A code span in the prose that starts like a command (``make ...``,
``tierroute ...``, ``.venv/bin/...``) is a command too. Each comes with the text to run exactly
as written and a key (comment dropped, continuations joined, whitespace collapsed) to look it
up by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHELL_LANGUAGES = frozenset({"sh", "bash", "shell"})
PYTHON_LANGUAGES = frozenset({"python", "py"})
DIAGRAM_LANGUAGES = frozenset({"", "text"})

# How a command starts, in prose or in a line of a diagram.
COMMAND_START = re.compile(r"^(make|tierroute|\.venv/bin/\S+|grpcurl|curl|python\S*)(\s|$)")
_PROSE_COMMAND = re.compile(r"^(make|tierroute|\.venv/bin/\S+)\s")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)")
_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language tag, its body, the line of its first body line."""

    language: str
    body: str
    line: int


@dataclass(frozen=True)
class Code:
    """One thing a reader could run: ``kind`` is ``sh``, ``python`` or ``prose``."""

    kind: str
    text: str
    """Exactly as written (a shell command keeps its ``\\`` continuations and comment)."""
    key: str
    """Shell and prose: the command without its comment, on one line. Python: the first line."""
    line: int


def fenced_blocks(markdown: str) -> list[Block]:
    """The fenced code blocks of ``markdown`` in order (an unclosed fence runs to the end)."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        start = index
        while index < len(lines) and not lines[index].lstrip(" ").startswith(fence):
            index += 1
        blocks.append(Block(language, "\n".join(lines[start:index]), start + 1))
        index += 1
    return blocks


def prose(markdown: str) -> str:
    """``markdown`` with the bodies of its fenced blocks blanked (line numbers kept)."""
    kept: list[str] = []
    inside: str | None = None
    for line in markdown.splitlines():
        opening = _FENCE.match(line)
        if inside is None and opening is not None:
            inside = opening.group(1)
            kept.append("")
        elif inside is not None:
            if line.lstrip(" ").startswith(inside):
                inside = None
            kept.append("")
        else:
            kept.append(line)
    return "\n".join(kept)


def strip_comment(command: str) -> str:
    """``command`` without a trailing shell comment (a ``#`` at a word start, outside quotes)."""
    quote: str | None = None
    previous = " "
    for position, char in enumerate(command):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and previous.isspace():
            return command[:position].rstrip()
        previous = char
    return command.rstrip()


def shell_commands(block: Block) -> list[Code]:
    """The commands of a shell block, one per logical line (``\\`` continues a line)."""
    commands: list[Code] = []
    pending: list[str] = []
    first = 0
    for offset, line in enumerate(block.body.splitlines()):
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            first = block.line + offset
        pending.append(line)
        if line.endswith("\\"):
            continue
        text = "\n".join(pending)
        joined = " ".join(part.removesuffix("\\").strip() for part in pending)
        commands.append(Code("sh", text, " ".join(strip_comment(joined).split()), first))
        pending = []
    if pending:  # a continuation into the end of the block: still one command
        text = "\n".join(pending)
        commands.append(Code("sh", text, " ".join(strip_comment(text).split()), first))
    return commands


def python_snippet(block: Block) -> Code:
    """A python block as one snippet, keyed by its first non-blank line."""
    first = next((line.strip() for line in block.body.splitlines() if line.strip()), "")
    return Code("python", block.body + "\n", first, block.line)


def prose_commands(markdown: str) -> list[Code]:
    """Code spans of the prose that start like a command, in order (one span may wrap)."""
    text = prose(markdown)
    found: list[Code] = []
    for span in _SPAN.finditer(text):
        command = " ".join(span.group(1).split())
        if _PROSE_COMMAND.match(command):  # a bare `tierroute` names the command
            line = text.count("\n", 0, span.start()) + 1
            found.append(Code("prose", command, command, line))
    return found


@dataclass(frozen=True)
class Document:
    """Everything runnable in a document, and what does not fit the three kinds."""

    code: list[Code]
    problems: list[str]
    """Blocks with an unknown language, and command-like lines in untagged blocks."""


def read_code(markdown: str) -> Document:
    """Split ``markdown`` into :class:`Code` items (and the problems that stop a clean split)."""
    code: list[Code] = []
    problems: list[str] = []
    for block in fenced_blocks(markdown):
        if block.language in SHELL_LANGUAGES:
            code.extend(shell_commands(block))
        elif block.language in PYTHON_LANGUAGES:
            code.append(python_snippet(block))
        elif block.language in DIAGRAM_LANGUAGES:
            for offset, line in enumerate(block.body.splitlines()):
                if COMMAND_START.match(line.strip().removeprefix("$ ")):
                    problems.append(
                        f"line {block.line + offset}: a command in an untagged block "
                        f"(tag the block sh): {line.strip()!r}"
                    )
        else:
            problems.append(
                f"line {block.line}: a ```{block.language} block, which this test cannot run "
                "(teach tests/integration/readme_code.py the language)"
            )
    code.extend(prose_commands(markdown))
    return Document(sorted(code, key=lambda c: c.line), problems)
