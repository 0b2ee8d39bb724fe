"""CSV downloads that are safe to open in a spreadsheet: every export in the admin goes through here.

A text cell beginning with = + - @, a tab or a carriage return is run as a
formula by Excel, LibreOffice and Google Sheets (OWASP "CSV Injection"), and a
recipient's name or anything else a person typed may begin with one: such a
cell is written with a ' in front, which spreadsheets show as text. Numbers
the code itself writes (int, Decimal) are left as they are: they cannot hold a
formula, and a quote would turn -12.50 into text a spreadsheet no longer adds
up. So an amount goes in as a Decimal, never as "-$12.50" (which would be
quoted like any other text).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

from django.http import StreamingHttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """The value as a spreadsheet should show it: text that would start a formula gets a leading '."""
    if value is None:
        return ""
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file-like object csv.writer writes a row to, handing the line straight back (for streaming)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """The header and each row as CSV lines, every cell through safe_cell, one line at a time."""
    writer = csv.writer(_Echo())
    yield writer.writerow([safe_cell(cell) for cell in header])
    for row in rows:
        yield writer.writerow([safe_cell(cell) for cell in row])


def csv_download(header: Sequence[str], rows: Iterable[Sequence[object]], *, filename: str) -> StreamingHttpResponse:
    """A CSV attachment, streamed: a year of rows never sits in memory at once."""
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
