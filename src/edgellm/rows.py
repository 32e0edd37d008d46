"""Rows of the CSV and JSONL files users hand edgellm (task datasets, outcome matrices,
store exports, job results), read one way and reported one way.

A CSV file has a header and is read as UTF-8 (a byte-order mark is dropped); a JSONL
file holds one JSON object per line (blank lines are skipped). Every reader parses
its rows with ``parse_rows``: a row that cannot be read is one ``ConfigError`` naming
the file, the line and the field (a CSV column or a JSONL key alike)::

    data.csv:7: field 'correct': 'maybe' is not true/false or 1/0

or, where the reader allows it, is left out and counted.
"""

import csv
import io
import math

import orjson

from edgellm.errors import ConfigError


class BadRow(ValueError):
    """A row that cannot be read: ``field`` names the column or key at fault."""

    def __init__(self, field, message):
        self.field = field
        super().__init__(message)


def row_error(path, line, error):
    """The one wording of a bad row: ``path:line: field 'name': message``."""
    return ConfigError(f"{path}:{line}", f"field '{error.field}': {error}")


def read_rows(path):
    """(line number, dict or BadRow) for each row of a CSV or JSONL file; a CSV row's
    number is the line it starts on."""
    if str(path).endswith(".csv"):
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:  # reads the header (None: an empty file)
                return
            start = reader.line_num + 1
            for row in reader:
                yield start, row
                start = reader.line_num + 1
        return
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                yield number, BadRow("(line)", f"invalid JSON: {err}")
                continue
            yield number, record if isinstance(record, dict) else \
                BadRow("(line)", "expected a JSON object")


def first_row(path):
    """The first readable row of a CSV or JSONL file, to tell its format by its
    columns; {} when there is none."""
    return next((row for _, row in read_rows(path) if isinstance(row, dict)), {})


def csv_header(path):
    """The column names of a CSV file, in file order; None for an empty file."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), None)


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
