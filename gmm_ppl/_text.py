"""Plain-text output shared by the library and the application: the one Markdown table writer."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def markdown_table(header: list[str], rows: Iterable[Iterable], cell: Callable[[object], str] = str) -> str:
    """A GitHub Markdown table: ``header``, then one line per row, every value that is not
    already a string written by ``cell``.

    Example:
      >>> print(markdown_table(["model", "bic"], [["VVV", -4751.31]], cell="{:.1f}".format))
      | model | bic |
      |---|---|
      | VVV | -4751.3 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(v if isinstance(v, str) else cell(v) for v in row) + " |")
    return "\n".join(lines)
