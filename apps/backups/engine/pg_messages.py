"""PostgreSQL's error messages without the row values they quote.

A failing load or migration makes PostgreSQL quote the data it choked on:
``DETAIL:  Key (email)=(maria@correo.es) already exists.``, ``DETAIL:  Failing
row contains (Juana Pérez, …).``, ``invalid input syntax for type date: "ayer"``,
``CONTEXT:  COPY t, line 3: "…"``. Those values are clinical data: they must not
reach logs, error records or operators' alerts. What is kept (table, column and
constraint names, the line number) is what an operator needs to find the fault.
"""

from __future__ import annotations

import re

ELIDED = "…"
# A message's parts: lines, the literal "\n" of an exception's repr(), psql tails joined with " | ".
_SEGMENT = re.compile(r"(\n|\\n| \| )")
# Greedy (a value may itself hold brackets or quotes): up to the words PostgreSQL puts
# after the values when they are there, else to the segment's end (or last '"').
_KEY_TAIL = r"(?=\s+(?:already exists|is not present|is still referenced|is duplicated|conflicts with))"
_KEY_VALUES = re.compile(rf"([Kk]ey \([^)]*\)=)(?:\(.*\){_KEY_TAIL}|\(.*)")
_FAILING_ROW = re.compile(r"(Failing row contains )(?:\(.*\)(?=\.)|\(.*)")
_QUOTED_VALUE = re.compile(r'(:\s+)".*"')


def pg_values_removed(text: str) -> str:
    """``text`` with every row value PostgreSQL quoted in it replaced by "…"."""
    pieces = _SEGMENT.split(text)  # segments, with the separators between them (odd places)
    return "".join(piece if place % 2 else _segment_clean(piece) for place, piece in enumerate(pieces))


def _segment_clean(segment: str) -> str:
    segment = _KEY_VALUES.sub(rf"\1({ELIDED})", segment)
    segment = _FAILING_ROW.sub(rf"\1({ELIDED})", segment)
    return _QUOTED_VALUE.sub(rf'\1"{ELIDED}"', segment)
