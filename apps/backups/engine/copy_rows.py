"""Counting the rows of a plain SQL dump's ``COPY`` blocks as it streams past.

A plain dump (pg_dump's, or any dumper writing the same format) carries each
table's rows as::

    COPY <schema>.<table> (<columns>) FROM stdin;
    <one line per row: text format escapes newlines inside values as \\n>
    \\.

so a block's rows are the newlines between its header line and the ``\\.``
line. ``CopyRowCounter`` wraps the dump's readable stream and counts them with
``bytes.count``/``bytes.find`` on each chunk as it passes (no copy of the
chunk, no per-line Python work); ``copy_counts_check`` then compares the counts
with the snapshot's per-table counts. A dump that disagrees with its snapshot
(pg_dump reading a schema a restore swapped in mid-dump, a lost block) must
never become a ``succeeded`` backup.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from apps.backups.errors import DumpError

COPY_START = b"\nCOPY "  # a COPY command at the start of a line
COPY_END = b"\n\\.\n"  # the end-of-data line, after the block's last row
HEADER_MAX = 64 * 1024  # a header longer than this is not one of pg_dump's
_HEADER_RE = re.compile(r'^COPY (?P<name>(?:"(?:[^"]|"")+"|[^\s."]+)(?:\.(?:"(?:[^"]|"")+"|[^\s."]+))?) .*FROM stdin;$')
_PART_RE = re.compile(r'"((?:[^"]|"")+)"|([^\s."]+)')


def copy_table_name(header: str) -> str | None:
    """The (unqualified, unquoted) table of a ``COPY … FROM stdin;`` line, or None."""
    match = _HEADER_RE.match(header)
    if not match:
        return None
    parts = [quoted.replace('""', '"') if quoted else plain for quoted, plain in _PART_RE.findall(match["name"])]
    return parts[-1] if parts else None


class CopyRowCounter:
    """A readable stream passing ``source`` through, counting its COPY blocks' rows.

    ``counts`` maps each table to its rows (summed if a table has several
    blocks); ``complete`` says no block was left open at the end of the stream.
    Attributes of the source (``bytes_read``) are passed through.
    """

    def __init__(self, source: BinaryIO):
        self._source = source
        self.counts: dict[str, int] = {}
        self.unparsed_headers = 0
        self._table: str | None = None  # inside a block: its table
        self._header: bytearray | None = None  # reading a header line
        self._tail = b"\n"  # the stream's last bytes: a match may straddle two chunks
        self.ended = False

    def __getattr__(self, name):
        return getattr(self._source, name)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._scan(data)
        else:
            self.ended = True
        return data

    @property
    def complete(self) -> bool:
        return self.ended and self._table is None and self._header is None

    def _scan(self, data: bytes) -> None:
        position = 0
        size = len(data)
        at_chunk_start = True
        while position < size:
            if self._header is not None:
                newline = data.find(b"\n", position)
                end = size if newline < 0 else newline
                self._header += data[position:end]
                if len(self._header) > HEADER_MAX:
                    self._header = None  # not a COPY header after all
                    continue
                if newline < 0:
                    break
                self._block_start(self._header.decode("utf-8", "replace"))
                self._header = None
                position = newline + 1
                at_chunk_start = False
            elif self._table is None:
                start = self._find(data, COPY_START, position, at_chunk_start)
                if start is None:
                    break
                self._header = bytearray(b"COPY ")
                position = start + len(COPY_START)
                at_chunk_start = False
            else:
                end = self._find(data, COPY_END, position, at_chunk_start)
                if end is None:
                    self.counts[self._table] += data.count(b"\n", position)
                    break
                # Rows end with the newlines before the end line's own one; a match
                # starting in the previous chunk counted them already.
                self.counts[self._table] += data.count(b"\n", position, max(end + 1, position))
                self._table = None
                position = end + len(COPY_END)
                at_chunk_start = False
        self._tail = (self._tail + data[-8:])[-8:]

    def _find(self, data: bytes, pattern: bytes, position: int, at_chunk_start: bool) -> int | None:
        """Where ``pattern`` starts in ``data`` from ``position`` (negative: it
        started in the previous chunk's tail), or None."""
        if at_chunk_start and position == 0:
            joined = self._tail + data[: len(pattern) - 1]
            found = joined.find(pattern)
            if 0 <= found < len(self._tail) and found + len(pattern) > len(self._tail):
                return found - len(self._tail)
        # Both patterns start with the newline ending the line before: after a header
        # or an end line, that newline is the byte just before ``position``.
        found = data.find(pattern, max(position - 1, 0))
        return None if found < 0 else found

    def _block_start(self, header: str) -> None:
        table = copy_table_name(header)
        if table is None:
            self.unparsed_headers += 1
            return
        self._table = table
        self.counts.setdefault(table, 0)


def copy_counts_check(*, counted: CopyRowCounter, expected: dict[str, int], schema_name: str) -> None:
    """``DumpError`` unless every table's COPY rows equal the snapshot's count
    (a table without a block counts as 0 rows)."""
    if not counted.complete:
        raise DumpError(f"El volcado de {schema_name} terminó dentro de un bloque COPY.")
    row_counts_check(counts=counted.counts, expected=expected, schema_name=schema_name)


def row_counts_check(*, counts: dict[str, int], expected: dict[str, int], schema_name: str) -> None:
    """``DumpError`` unless ``counts`` (the rows a dump wrote per table) equal the
    snapshot's ``expected`` counts, a table missing from either counting as 0."""
    tables = sorted(set(expected) | set(counts))
    wrong = [
        f"{table}: {counts.get(table, 0)} en el volcado, {expected.get(table, 0)} en la instantánea"
        for table in tables
        if counts.get(table, 0) != expected.get(table, 0)
    ]
    if wrong:
        shown = "; ".join(wrong[:5]) + (f"; y {len(wrong) - 5} tabla(s) más" if len(wrong) > 5 else "")
        raise DumpError(f"El volcado de {schema_name} no coincide con su instantánea ({shown}); no se guardó.")
