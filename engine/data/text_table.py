"""Reading a labeled table file (.csv, .tsv, .jsonl): its texts, and a sentence for every row
that is not used."""

from __future__ import annotations

from pathlib import Path

from engine.data.problems import Problem
from engine.data.text_items import TextItem, TextProblemKind, Where, aggregate, encoding_problem
from engine.data.text_read import Table, cell_text, choose_columns, read_table

_SKIPPED = ("it is skipped.", "they are skipped.")


def table_items(
    path: Path, text_column: str | None, label_column: str | None
) -> tuple[list[TextItem], list[Problem], tuple[str | None, str | None], int]:
    """(texts, problems, (text column, label column), rows read) of a table file; every row
    read is either a text or counted in a problem."""
    table = read_table(path)
    text_col, label_col = choose_columns(table, path.name, text_column, label_column)
    where = Where(table.unit, path.name, str(path))
    problems: list[Problem] = []
    if table.encoding:
        problems.append(
            encoding_problem(TextProblemKind.ENCODING, where, [path.name], table.encoding)
        )
    problems.extend(_shape_problems(table, where))
    items: list[TextItem] = []
    no_text: list[str] = []
    no_label: list[str] = []
    for number, row in table.rows:
        text, label = cell_text(row.get(text_col)), cell_text(row.get(label_col))
        if not text:
            no_text.append(str(number))
        elif not label:
            no_label.append(str(number))
        else:
            origin = f"{path.name}:{table.unit} {number}"
            items.append(TextItem(text=text, cls=label, split=None, ref=str(number), origin=origin))
    skipped = ("it is skipped.", "they are skipped.")
    if no_text:
        problems.append(
            aggregate(
                TextProblemKind.EMPTY_TEXT, where, no_text, ("has no text", "have no text"), skipped
            )
        )
    if no_label:
        problems.append(
            aggregate(
                TextProblemKind.MISSING_LABEL,
                where,
                no_label,
                ("has no label", "have no label"),
                skipped,
            )
        )
    return items, problems, (text_col, label_col), table.rows_read


def _shape_problems(table: Table, where: Where) -> list[Problem]:
    """Rows the parser could not turn into values: bad JSON lines, blank rows, an open quote."""
    problems = []
    if table.bad_lines:
        problems.append(
            aggregate(
                TextProblemKind.BAD_LINE,
                where,
                [str(n) for n in table.bad_lines],
                ("is not a JSON object", "are not JSON objects"),
                _SKIPPED,
            )
        )
    if table.blank_rows:
        problems.append(
            aggregate(
                TextProblemKind.BLANK_ROW,
                where,
                [str(n) for n in table.blank_rows],
                ("is empty", "are empty"),
                _SKIPPED,
            )
        )
    quote = table.open_quote
    if quote is not None:
        column = table.columns[quote.column - 1] if quote.column <= len(table.columns) else ""
        named = f" ('{column}')" if column else ""
        last = quote.row + quote.rows - 1
        what = (
            f", so it swallows every row after it: rows {quote.row} to {last} ({quote.rows} "
            "rows) are skipped"
            if quote.rows > 1
            else "; the row is skipped"
        )
        problems.append(
            Problem(
                kind=TextProblemKind.OPEN_QUOTE,  # type: ignore[arg-type]
                path=where.path,
                message=f"Row {quote.row} of {where.file} opens a quote in column {quote.column}"
                f"{named} that is never closed{what}. Close the quote (a quote inside a quoted "
                'cell is written twice: "") and scan again.',
            )
        )
    return problems
