"""Label values that are always valid and of bounded cardinality.

prometheus_client escapes backslash, double quote and line feed in label values; what it cannot
write is text that is not UTF-8 (a lone surrogate would fail the whole scrape). :func:`label_value`
replaces that, and control characters other than tab and line feed, by U+FFFD and caps the length;
quotes, backslashes, braces and line feeds come through unchanged (escaped on the wire).

Quarantine reasons quote the rejected values, so each bad value would make a new series:
:func:`reason_group` folds the numbers, and :func:`top_reasons` keeps the most frequent few.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

MAX_LABEL_LENGTH = 200
MAX_REASON_LENGTH = 120
OTHER_REASON = "other"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")


def label_value(text: str, max_length: int = MAX_LABEL_LENGTH) -> str:
    """``text`` as a valid label value, at most ``max_length`` characters.

    >>> label_value('a"b\\\\c{d}\\ne')
    'a"b\\\\c{d}\\ne'
    >>> label_value("bad\\udcff\\x00")
    'bad\\ufffd\\ufffd'
    >>> label_value("x" * 300)[-3:], len(label_value("x" * 300))
    ('xx…', 200)
    """
    clean = _SURROGATE.sub("\ufffd", _CONTROL.sub("\ufffd", text))
    return clean if len(clean) <= max_length else clean[: max_length - 1] + "…"


def reason_group(reason: str) -> str:
    """A quarantine reason with its numbers folded to ``#``, as a label value.

    >>> reason_group("probabilities sum to 1.0123, not 1 (±0.01)")
    'probabilities sum to #, not # (±#)'
    """
    return label_value(_NUMBER.sub("#", reason), MAX_REASON_LENGTH)


def top_reasons(counts: Iterable[tuple[str, int]], total: int, keep: int) -> list[tuple[str, int]]:
    """The ``keep`` most frequent reason groups, and ``other`` for the rest of ``total`` rows.

    >>> top_reasons([("row 1 bad", 5), ("row 2 bad", 4), ("late", 3), ("odd", 1)], total=20, keep=2)
    [('row # bad', 9), ('late', 3), ('other', 8)]
    """
    grouped: Counter[str] = Counter()
    for reason, rows in counts:
        grouped[reason_group(reason)] += rows
    ranked = sorted(grouped.items(), key=lambda item: (-item[1], item[0]))
    kept = [(reason, rows) for reason, rows in ranked[:keep] if reason != OTHER_REASON]
    rest = total - sum(rows for _, rows in kept)
    return [*kept, (OTHER_REASON, rest)] if rest > 0 else kept
