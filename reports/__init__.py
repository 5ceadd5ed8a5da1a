"""Weekly HTML reports: what the other layers produced, rendered for ML owners.

- :class:`WeeklySummary` (:mod:`reports.summary`) is what a weekly page shows, typed;
- :func:`render_weekly` writes ``report.html`` and ``summary.json`` for one model-week;
- :func:`render_index` writes the model's ``index.html`` listing every week;
- :func:`render_evidently` writes evidently's detailed data-drift page.

Nothing here computes statistics, reads a database or runs at import.
"""

from reports.detail import render_evidently
from reports.render import WeeklyReportFiles, render_index, render_weekly
from reports.summary import IndexEntry, WeeklySummary

__all__ = ["IndexEntry", "WeeklyReportFiles", "WeeklySummary", "render_evidently", "render_index", "render_weekly"]
