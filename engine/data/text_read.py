"""Reading text sources: decoding bytes, parsing CSV / TSV / JSON Lines, guessing the columns."""

from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.data.problems import DatasetError
from engine.data.safe_read import TABLE_LIMIT, FileReadError, read_capped

TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl")

# Names users give their columns, matched case-insensitively.
TEXT_NAMES = frozenset(
    {"text", "texts", "sentence", "message", "review", "content", "body", "comment", "document"}
    | {"tweet", "utterance", "passage", "description", "excerpt"}
)
LABEL_NAMES = frozenset(
    {"label", "labels", "class", "category", "target", "sentiment", "y", "intent", "topic"}
)
_ENCODING_NAMES = {"cp1252": "Windows-1252", "latin-1": "Latin-1", "utf-16": "UTF-16"}
_CSV_FIELD_LIMIT = 64 * 1024 * 1024  # long documents in one cell are fine
# Every row is a Python dict in memory (a few hundred bytes, whatever its length): a table of
# millions of short rows would take many GB long before it reached TABLE_LIMIT.
ROW_LIMIT = 2_000_000


class BinaryFileError(ValueError):
    """The bytes are not text (they hold NUL bytes)."""


def decode_text(data: bytes) -> tuple[str, str | None]:
    """The text and, when it was not UTF-8, the readable name of the encoding used.

    UTF-8 (with or without BOM) and UTF-16 with BOM are read as such; anything else is read as
    Windows-1252, or Latin-1 when it has bytes Windows-1252 leaves undefined.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), _ENCODING_NAMES["utf-16"]
    if b"\x00" in data:
        raise BinaryFileError("it contains NUL bytes")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), _ENCODING_NAMES["cp1252"]
    except UnicodeDecodeError:
        return data.decode("latin-1"), _ENCODING_NAMES["latin-1"]


@dataclass(frozen=True)
class OpenQuote:
    """A quote that is never closed: it opens column ``column`` (1-based) of row ``row`` and
    swallows everything to the end of the file, ``rows`` rows in all (``row`` included)."""

    row: int
    column: int
    rows: int


@dataclass
class Table:
    """The rows of a table file. ``rows`` pairs each row's number (spreadsheet row, the header
    being row 1; or file line for JSON Lines) with its values by column name.

    Every row of the file is either in ``rows`` or accounted for: ``bad_lines`` (JSON Lines
    that are not objects), ``blank_rows`` (rows with no value in any cell) or ``open_quote``.
    """

    columns: list[str]
    rows: list[tuple[int, dict[str, object]]] = field(default_factory=list)
    unit: str = "row"
    encoding: str | None = None
    bad_lines: list[int] = field(default_factory=list)  # JSON Lines that could not be parsed
    blank_rows: list[int] = field(default_factory=list)
    open_quote: OpenQuote | None = None

    @property
    def rows_read(self) -> int:
        """How many rows (or lines) the file holds below its header."""
        swallowed = self.open_quote.rows if self.open_quote else 0
        return len(self.rows) + len(self.bad_lines) + len(self.blank_rows) + swallowed


def read_table(path: Path) -> Table:
    """Parse a .csv (delimiter sniffed), .tsv or .jsonl file; DatasetError when impossible."""
    name = path.name
    try:
        data = read_capped(path, TABLE_LIMIT, what="table")
    except FileReadError as exc:
        raise DatasetError(
            f"{path} {exc.reason}; choose a readable .csv, .tsv or .jsonl file."
        ) from None
    if not data.strip():
        raise DatasetError(
            f"{name} is empty; choose a file with a header row and one example a row."
        )
    try:
        text, encoding = decode_text(data)
    except BinaryFileError as exc:
        raise DatasetError(
            f"{name} is not a text file ({exc}); export the data as CSV, TSV or JSON Lines."
        ) from exc
    if path.suffix.lower() == ".jsonl":
        table = _read_jsonl(text, name)
    else:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(text)
        table = _read_delimited(text, delimiter, name)
    table.encoding = encoding
    return table


def _sniff_delimiter(text: str) -> str:
    sample = text[: 64 * 1024]
    header = sample.splitlines()[0] if sample.splitlines() else ""
    try:
        sniffed = csv.Sniffer().sniff(sample.rsplit("\n", 1)[0] or sample, delimiters=",;\t|")
        if sniffed.delimiter in header:
            return sniffed.delimiter
    except csv.Error:
        pass
    # The header row rarely holds quoted text: its most frequent candidate is the delimiter.
    counts = {d: header.count(d) for d in ",;\t|"}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_delimited(text: str, delimiter: str, name: str) -> Table:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise DatasetError(f"{name} has no header row; its first row must name the columns.")
        columns = _unique_names([h.strip() for h in header])
        table = Table(columns=columns)
        last: tuple[int, int, list[str]] | None = None  # row, its first line, values
        row_number, prev_end = 1, reader.line_num
        # Spreadsheet numbering (what a user sees when opening the file): the header is row 1.
        for row_number, record in enumerate(reader, start=2):
            if row_number > ROW_LIMIT + 1:
                raise DatasetError(_too_many(name, "rows"))
            if last is not None:
                _add_row(table, *last)
            last = (row_number, prev_end + 1, record)
            prev_end = reader.line_num
        # An unclosed quote swallows every row after it into the last row's last cell.
        tail = _lines_from(text, last[1]) if last is not None else ""
        if last is not None and _ends_in_open_quote(tail, delimiter):
            # Empty lines at the very end are not rows, swallowed or not.
            lines = len(io.StringIO(tail.rstrip("\r\n"), newline="").readlines())
            table.open_quote = OpenQuote(last[0], max(1, len(last[2])), max(1, lines))
        elif last is not None:
            _add_row(table, *last)
        while table.blank_rows and table.blank_rows[-1] == row_number:
            # Empty lines at the very end are not rows anyone sees in a spreadsheet.
            table.blank_rows.pop()
            row_number -= 1
    except csv.Error as exc:
        raise DatasetError(
            f"{name} cannot be parsed (line {reader.line_num}: {exc}); check its quotes."
        ) from exc
    return table


def _add_row(table: Table, row_number: int, _line: int, record: list[str]) -> None:
    if any(v.strip() for v in record):
        table.rows.append((row_number, dict(zip(table.columns, record, strict=False))))
    else:
        table.blank_rows.append(row_number)


def _lines_from(text: str, first_line: int) -> str:
    """The text from line ``first_line`` (1-based, as csv counts lines) to the end."""
    return "".join(itertools.islice(io.StringIO(text, newline=""), first_line - 1, None))


def _ends_in_open_quote(text: str, delimiter: str) -> bool:
    """Whether ``text`` (whole rows) ends inside a quoted cell, read as Python's csv reads it:
    a quote opens a cell only at its start, and "" inside a quoted cell is a quote."""
    quoted, at_start = False, True
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quoted:
            if c == '"':
                if i + 1 < n and text[i + 1] == '"':
                    i += 1
                else:
                    quoted = False
        elif c == delimiter or c in "\r\n":
            at_start = True
            i += 1
            continue
        elif at_start and c == '"':
            quoted = True
        at_start = False
        i += 1
    return quoted


def _read_jsonl(text: str, name: str) -> Table:
    columns: dict[str, None] = {}
    table = Table(columns=[], unit="line")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(table.rows) + len(table.bad_lines) >= ROW_LIMIT:
            raise DatasetError(_too_many(name, "lines"))
        try:
            record = json.loads(line)
        except ValueError:
            table.bad_lines.append(number)
            continue
        if not isinstance(record, dict):
            table.bad_lines.append(number)
            continue
        columns.update(dict.fromkeys(str(k) for k in record))
        table.rows.append((number, {str(k): v for k, v in record.items()}))
    if not table.rows and table.bad_lines:
        raise DatasetError(
            f"{name} holds no JSON objects; write one object a line, e.g. "
            '{"text": "...", "label": "..."}.'
        )
    table.columns = list(columns)
    return table


def _too_many(name: str, unit: str) -> str:
    return (
        f"{name} has more than {ROW_LIMIT:,} {unit}, the most read from one table; choose a "
        "sample of it (or split it into smaller files) and use that."
    )


def _unique_names(names: list[str]) -> list[str]:
    """Header names, blank ones named "column N" and repeats suffixed, so none is lost."""
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names, start=1):
        name = name or f"column {i}"
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        out.append(name)
    return out


def cell_text(value: object) -> str:
    """A cell as a stripped string; missing values are ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).strip()


def choose_columns(
    table: Table, name: str, text_column: str | None, label_column: str | None
) -> tuple[str, str]:
    """The (text, label) columns: the given names, checked, or a guess when it is clear."""
    for given, flag in ((text_column, "--text-column"), (label_column, "--label-column")):
        if given is not None and given not in table.columns:
            raise DatasetError(
                f"{name} has no column '{given}' (its columns are {_listing(table.columns)}); "
                f"choose one of them with {flag}."
            )
    text = text_column or _by_name(table, TEXT_NAMES, exclude=label_column)
    label = label_column or _by_name(table, LABEL_NAMES, exclude=text)
    if label is None:
        label = _few_values(table, exclude=text)
    if text is None:
        text = _longest(table, exclude=label)
    if text is None or label is None or text == label:
        missing = [
            flag
            for flag, col in (("--text-column", text), ("--label-column", label))
            if col is None or text == label
        ]
        which = "text and label" if len(missing) == 2 else ("text" if text is None else "label")
        raise DatasetError(
            f"{name} has the columns {_listing(table.columns)} and which one holds the {which} "
            f"is not clear; choose with {' and '.join(missing)}."
        )
    return text, label


def text_column_of(table: Table, name: str, text_column: str | None) -> str:
    """The text column of a table that may have no labels (texts to classify)."""
    if text_column is not None and text_column not in table.columns:
        raise DatasetError(
            f"{name} has no column '{text_column}' (its columns are {_listing(table.columns)}); "
            "choose one of them with --text-column."
        )
    column = text_column or _by_name(table, TEXT_NAMES, exclude=None) or _longest(table, None)
    if column is None:
        raise DatasetError(f"{name} has no column of text; choose one with --text-column.")
    return column


def _listing(columns: list[str]) -> str:
    return ", ".join(f"'{c}'" for c in columns) if columns else "(none)"


def _by_name(table: Table, names: frozenset[str], exclude: str | None) -> str | None:
    found = [c for c in table.columns if c.strip().lower() in names and c != exclude]
    return found[0] if len(found) == 1 else None


def _values(table: Table, column: str) -> list[str]:
    return [v for _, row in table.rows if (v := cell_text(row.get(column)))]


def _few_values(table: Table, exclude: str | None) -> str | None:
    """The one column with few distinct short values, if there is exactly one."""
    n = len(table.rows)
    found = []
    for column in table.columns:
        values = _values(table, column)
        if column == exclude or not values:
            continue
        distinct = set(values)
        short = sum(map(len, values)) / len(values) <= 30
        if short and len(distinct) <= min(100, max(2, n // 2)):
            found.append(column)
    return found[0] if len(found) == 1 else None


def _longest(table: Table, exclude: str | None) -> str | None:
    """The column with clearly the longest strings (or the only column left)."""
    averages = []
    for column in table.columns:
        if column == exclude:
            continue
        values = _values(table, column)
        averages.append((sum(map(len, values)) / len(values) if values else 0.0, column))
    averages.sort(reverse=True)
    if len(averages) == 1:
        return averages[0][1]
    if len(averages) >= 2 and averages[0][0] > 0 and averages[0][0] >= 1.5 * averages[1][0]:
        return averages[0][1]
    return None
