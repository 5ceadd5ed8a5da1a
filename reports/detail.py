"""The detailed evidently data-drift page, linked from the weekly report.

evidently (0.7 API) is imported inside :func:`render_evidently`: it takes seconds to
import and nothing else in ``reports`` needs it. Its saved HTML bundles its own
JavaScript and fonts inline (checked on 0.7.23: no ``<script src>``, no stylesheet
link), so the page opens offline, but it needs JavaScript and weighs about 4 MB.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING

from drift.errors import ValidationError
from reports.render import write_atomic

if TYPE_CHECKING:
    import pandas as pd

_HEAD = re.compile(r"<head[^>]*>", re.IGNORECASE)


def render_evidently(reference: pd.DataFrame, current: pd.DataFrame, out_path: Path, title: str) -> Path | None:
    """Write evidently's ``DataDriftPreset`` report of ``current`` against ``reference`` to ``out_path``.

    The frames are the bounded samples the caller chose; only their common columns are
    compared. Returns ``None`` (and writes nothing) when either frame has no rows or
    they share no column. ``title`` becomes the page's ``<title>``.

    Raises:
        ValidationError: evidently could not build the report on these samples.
    """
    common = [c for c in reference.columns if c in set(current.columns)]
    if reference.empty or current.empty or not common:
        return None
    reference, current = _inert(reference[common]), _inert(current[common])
    common = list(reference.columns)
    from evidently import Report
    from evidently.presets import DataDriftPreset

    try:
        snapshot = Report([DataDriftPreset()]).run(current_data=current[common], reference_data=reference[common])
        page = snapshot.get_html_str(as_iframe=False)
    except Exception as exc:
        raise ValidationError(f"evidently could not build the drift report for {title!r}: {exc}") from exc
    head = _HEAD.search(page)
    if head is not None and "<title>" not in page[: page.find("</head>")]:
        page = page[: head.end()] + f"<title>{html.escape(title)}</title>" + page[head.end() :]
    return write_atomic(Path(out_path), page)


def _inert(frame: pd.DataFrame) -> pd.DataFrame:
    """evidently embeds column names and category values as raw JSON in ``<script>`` blocks,
    where ``</script>`` in a value would end the script: every ``<`` in them becomes ``‹``."""

    import pandas as pd

    def clean(value: object) -> object:
        return value.replace("<", "\u2039") if isinstance(value, str) else value

    out = frame.rename(columns=lambda c: str(c).replace("<", "\u2039"))
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column].dtype):
            out[column] = out[column].map(clean)
    return out
