"""A CSV file → records one at a time, each with its physical lines; a bad record never hides the next.

Why not polars here: ``pl.read_csv`` parses a file all or nothing. One row with bytes that are not
UTF-8 fails the whole file ("invalid utf-8 sequence"), it gives no line numbers, and
``truncate_ragged_lines`` hides extra fields. This module therefore decodes the bytes with
``errors="surrogateescape"`` (every byte survives: a bad one becomes a lone surrogate, found and
reported per field) and splits records with Python's :mod:`csv` in ``strict`` mode, so a stray quote
is an error at the record where it happens instead of a silent merge of the rows after it.
(polars still builds the row table that goes to Ray Data, :mod:`mgpt_data.flickr30k`.)

Resynchronisation: a record that is rejected while it spans several physical lines (usually an
unclosed quote that ran on into the next rows) gives up only its *first* line; the caller calls
:meth:`CsvRecords.resume_at` and reading restarts at the line after it, so every good row below is
read again from its own start. Every physical line after the header therefore ends in exactly one
record (or is blank).

Limits: a field over :data:`MAX_FIELD_CHARS` characters is a per-record error (a Flickr30k ``raw``
field holds about 500). Python's csv module refuses fields over ``csv.field_size_limit()``
(131072 by default) by raising; that is caught and reported the same way, and the process-wide
limit is never changed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_FIELD_CHARS = 65_536  # per CSV field; a Flickr30k `raw` field (5 captions) is ~500 characters
_SURROGATE = re.compile("[\ud800-\udfff]")  # what undecodable bytes (or JSON "\\ud800" escapes) become


@dataclass(frozen=True)
class CsvRecord:
    """One record: its fields, or ``error`` (why it cannot be used as fields)."""

    first_line: int  # 1-based physical line of the file (the header is line 1)
    last_line: int
    fields: list[str]
    error: str | None = None

    @property
    def spans_lines(self) -> bool:
        return self.last_line > self.first_line

    @property
    def lines(self) -> str:
        """``line 7`` or ``lines 7-9``, for messages."""
        if self.spans_lines:
            return f"lines {self.first_line}-{self.last_line}"
        return f"line {self.first_line}"


def undecodable_at(text: str) -> int | None:
    """Index of the first character that is not valid Unicode (a lone surrogate), else ``None``."""
    found = _SURROGATE.search(text)
    return None if found is None else found.start()


def printable(text: str) -> str:
    """``text`` safe to log and to write as UTF-8: lone surrogates (undecodable bytes) → U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _bytes_shown(text: str, at: int) -> str:
    """The undecodable bytes starting at ``at`` (up to 4), as a bytes literal."""
    end = at
    while end < len(text) and end - at < 4 and _SURROGATE.match(text[end]):
        end += 1
    return repr(text[at:end].encode("utf-8", "surrogateescape"))


class CsvRecords:
    """The records after the header of a CSV file, in order (see the module docstring)."""

    def __init__(self, text: str, *, max_field_chars: int = MAX_FIELD_CHARS) -> None:
        self._lines = io.StringIO(text, newline="").readlines()  # splits at \n, \r\n, \r like csv does
        self.max_field_chars = max_field_chars
        self._next = 0  # 0-based index of the next unread physical line
        self._reader = None
        self._reader_start = 0
        self.header: CsvRecord | None = None
        self.header = self._read()

    @classmethod
    def from_file(cls, path: Path, **kwargs) -> CsvRecords:
        return cls(path.read_bytes().decode("utf-8-sig", errors="surrogateescape"), **kwargs)

    @property
    def n_lines(self) -> int:
        return len(self._lines)

    def resume_at(self, line: int) -> None:
        """Read on from physical ``line`` (1-based), dropping what the current reader buffered."""
        self._next = line - 1
        self._reader = None

    def __iter__(self) -> Iterator[CsvRecord]:
        while (record := self._read()) is not None:
            yield record

    def _read(self) -> CsvRecord | None:
        if self._next >= len(self._lines):
            return None
        if self._reader is None:
            start = self._next
            self._reader_start = start
            self._reader = csv.reader((self._lines[i] for i in range(start, len(self._lines))), strict=True)
        first = self._next + 1
        try:
            fields = next(self._reader)
        except StopIteration:
            self._next = len(self._lines)
            return None
        except csv.Error as e:
            last = self._reader_start + self._reader.line_num
            self.resume_at(first + 1)  # the reader is lost after an error: restart below this line
            return CsvRecord(first, first, [], self._csv_error(e, first, last))
        self._next = self._reader_start + self._reader.line_num
        return CsvRecord(first, self._next, fields, self._field_problem(fields))

    def _csv_error(self, error: csv.Error, first: int, last: int) -> str:
        message = str(error)
        if "field larger than field limit" in message:
            return f"a field is longer than the {self.max_field_chars}-character limit"
        if "unexpected end of data" in message:
            message = "a quoted field is never closed"
        if last > first:
            return f"not valid CSV: unbalanced quote (read on to line {last}: {message})"
        return f"not valid CSV: {message}"

    def _field_problem(self, fields: list[str]) -> str | None:
        names = self.header.fields if self.header is not None else []
        for i, value in enumerate(fields):
            name = f"field {i + 1}" + (f" ({printable(names[i])!r})" if i < len(names) else "")
            if len(value) > self.max_field_chars:
                return f"{name} has {len(value)} characters, over the {self.max_field_chars}-character limit"
            at = undecodable_at(value)
            if at is not None:
                return f"{name} has bytes that are not UTF-8 ({_bytes_shown(value, at)} at character {at})"
        return None
