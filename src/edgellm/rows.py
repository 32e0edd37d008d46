"""Rows of the CSV and JSONL files users hand edgellm (task datasets, outcome matrices,
store exports, job results), read one way and reported one way.

A CSV file has a header and is read as UTF-8; a JSONL file holds one JSON object per
line (blank lines are skipped). A byte-order mark at the start of either (files saved
by Windows tools have one) is dropped, as by every reader of JSON. Every reader parses
its rows with ``parse_rows``: a row that cannot be read is one ``ConfigError`` naming
the file, the line and the field (a CSV column or a JSONL key alike)::

    data.csv:7: field 'correct': 'maybe' is not true/false or 1/0

or, where the reader allows it, is left out and counted. A CSV row that does not fit
its header (more or fewer cells), a cell that is not UTF-8 text or holds a NUL byte
is such a row; a header that names a column twice is an error of the whole file (the
project's rule: a name given twice is an error; a row that does not fit its header
is an error).
"""

import csv
import io
import math

import orjson

from edgellm.errors import ConfigError

BOM = b"\xef\xbb\xbf"  # UTF-8's byte-order mark, which Windows tools write first
# The longest CSV cell read: csv's own default (128 Ki characters) is shorter than a
# document a summarisation task may hold; a cell past this is an error at its line.
MAX_CELL_CHARS = 64 << 20


class BadRow(ValueError):
    """A row that cannot be read: ``field`` names the column or key at fault."""

    def __init__(self, field, message):
        self.field = field
        super().__init__(message)


WHOLE_ROW = "(line)"  # a BadRow's field when no one field is at fault


def row_error(path, line, error):
    """The one wording of a bad row: ``path:line: field 'name': message`` (without the
    field where the whole row is at fault)."""
    if error.field == WHOLE_ROW:
        return ConfigError(f"{path}:{line}", str(error))
    return ConfigError(f"{path}:{line}", f"field '{error.field}': {error}")


def read_rows(path):
    """(line number, dict or BadRow) for each row of a CSV or JSONL file; a CSV row's
    number is the line it starts on."""
    if str(path).endswith(".csv"):
        yield from _csv_rows(path)
        return
    with open_jsonl(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                yield number, BadRow(WHOLE_ROW, f"invalid JSON: {err}")
                continue
            yield number, record if isinstance(record, dict) else \
                BadRow(WHOLE_ROW, "expected a JSON object")


def open_jsonl(path):
    """A JSON or JSONL file opened for reading bytes, after its byte-order mark."""
    handle = open(path, "rb")
    if handle.read(len(BOM)) != BOM:
        handle.seek(0)
    return handle


def first_row(path):
    """The first readable row of a CSV or JSONL file, to tell its format by its
    columns; {} when there is none."""
    return next((row for _, row in read_rows(path) if isinstance(row, dict)), {})


def csv_header(path):
    """The column names of a CSV file, in file order; None for an empty file."""
    with _open_csv(path) as handle:
        return _header(path, csv.reader(handle))


def _open_csv(path):
    csv.field_size_limit(MAX_CELL_CHARS)  # process-wide: set before each read
    # Bytes that are not UTF-8 become lone surrogates: the row holding them is named
    # (and can be skipped) instead of the whole read failing at an unknown line.
    return open(path, newline="", encoding="utf-8-sig", errors="surrogateescape")


def _cell_problem(cell):
    """What is wrong with a cell's text, or None."""
    if "\x00" in cell:
        return "holds a NUL byte"
    if not cell.isascii():
        try:
            cell.encode("utf-8")
        except UnicodeEncodeError:
            return "is not UTF-8 text (save the file as UTF-8)"
    return None


def _next_row(path, reader):
    """The next row of a CSV ``reader`` (None at the end); a row csv cannot read (a
    cell longer than MAX_CELL_CHARS) is an error at its line."""
    try:
        return next(reader, None)
    except csv.Error as err:
        raise ConfigError(f"{path}:{reader.line_num}", f"cannot read the row: {err}") from None


def _header(path, reader):
    """The header row of a CSV ``reader``, checked; None for an empty file."""
    header = _next_row(path, reader)
    if header is None:
        return None
    seen = set()
    for name in header:
        problem = _cell_problem(name)
        if problem:
            raise ConfigError(f"{path}:1", f"the header {problem}")
        if name in seen and name:  # several unnamed columns: an export's empty ones
            raise ConfigError(f"{path}:1", f"column '{name}' given twice")
        seen.add(name)
    return header


def _csv_rows(path):
    with _open_csv(path) as handle:
        reader = csv.reader(handle)
        header = _header(path, reader)
        if header is None:
            return
        start = reader.line_num + 1
        while (cells := _next_row(path, reader)) is not None:
            if cells:  # a blank line holds no row
                yield start, _csv_row(header, cells)
            start = reader.line_num + 1


def _csv_row(header, cells):
    if len(cells) != len(header):
        return BadRow(WHOLE_ROW, f"{len(cells)} cells, but the header has {len(header)} "
                                 "columns")
    text = "".join(cells)
    if "\x00" in text or not text.isascii():
        for name, cell in zip(header, cells):
            problem = _cell_problem(cell)
            if problem:
                return BadRow(name, problem)
    return dict(zip(header, cells))


def parse_rows(path, parse, skip_bad_rows=False):
    """(values, skipped rows): ``parse(row, line, index)`` of each row of ``path``
    (``index`` counts rows from 0, bad ones included), in file order; a row it
    returns None for is left out. A row ``parse`` raises ``BadRow`` for (or that is
    not a JSON object) is a ``ConfigError`` in the one wording, or, with
    ``skip_bad_rows``, left out and counted."""
    values, skipped = [], 0
    for index, (line, row) in enumerate(read_rows(path)):
        try:
            if isinstance(row, BadRow):
                raise row
            value = parse(row, line, index)
        except BadRow as err:
            if not skip_bad_rows:
                raise row_error(path, line, err) from None
            skipped += 1
            continue
        if value is not None:
            values.append(value)
    return values, skipped


# -- fields ---------------------------------------------------------------------------


def present(row, field):
    """Whether ``row`` gives ``field`` (not missing, None or blank)."""
    value = row.get(field)
    return value is not None and not (isinstance(value, str) and not value.strip())


def number(row, field, prefix=""):
    """The number >= 0 in ``field``; None when not given. ``prefix`` goes before the
    field's name in the error (a nested key: ``response.perf.``)."""
    if not present(row, field):
        return None
    value = row[field]
    try:
        parsed = float(value)
    except (TypeError, ValueError):
        raise BadRow(prefix + field, f"{value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(parsed) or parsed < 0:
        raise BadRow(prefix + field, f"{value!r} is not a number >= 0")
    return parsed


def count(row, field, prefix=""):
    """The whole number >= 0 in ``field``; 0 when not given."""
    parsed = number(row, field, prefix)
    if parsed is None:
        return 0
    if parsed != int(parsed):
        raise BadRow(prefix + field, f"{row[field]!r} is not a whole number")
    return int(parsed)


# -- writing --------------------------------------------------------------------------


def csv_text(header, rows):
    """CSV text of dict rows under ``header`` (keys not in it are left out)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def jsonl_text(records):
    """JSONL text, one compact JSON object a line."""
    return "".join(orjson.dumps(r).decode() + "\n" for r in records)
