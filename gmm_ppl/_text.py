"""Plain-text output shared by the library and the application: the one Markdown table writer."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def spoken_list(items: Iterable[str], conjunction: str = "and") -> str:
    """Items as a person lists them: 'a, b and c' (or with another conjunction).

    Example:
      >>> spoken_list(["full", "tied", "diag"], "or")
      'full, tied or diag'
    """
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


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
