"""Charts of numbers the other layers computed, as inline SVG.

Each function takes plain lists (as found in the weekly summary) and returns the SVG
markup as :class:`markupsafe.Markup`, ready to be placed in an autoescaped template,
or ``None`` when there is nothing to draw. Nothing is computed here beyond placing
the given numbers on axes.

matplotlib is imported lazily and used without pyplot (no global figure registry, no
backend switch); style settings live in a ``rc_context`` so that importing or calling
this module never changes matplotlib's global state. Text is written as SVG ``<text>``
(``svg.fonttype = "none"``), which matplotlib escapes; ``$`` is escaped too so that a
label never turns into mathtext.

Sparklines are too small for matplotlib: :func:`sparkline` returns only coordinates,
and the template draws them.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

REFERENCE_COLOR = "#94a3b8"
CURRENT_COLOR = "#2563eb"
DRIFT_COLOR = "#dc2626"
MAX_CLASSES = 25
"""At most this many classes in the class-distribution chart (those with the largest share)."""

_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "driftkeeper",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
_SVG_START = re.compile(r"<svg\b")
_SIZE = re.compile(r'<svg([^>]*?) width="([0-9.]+)pt" height="([0-9.]+)pt"')


def _px(points: str) -> int:
    return round(float(points) * 4 / 3)


def plain_text(text: object, limit: int = 40) -> str:
    """A label safe for matplotlib: ``$`` escaped (no mathtext), shortened to ``limit`` characters."""
    s = str(text)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("$", r"\$")


def _nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _scope_ids(svg: str, prefix: str) -> str:
    """Prefix every ``id`` and reference to it, so that several charts can share one HTML page."""
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    return re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{prefix}-\1"', svg)


def _to_svg(fig: Figure, prefix: str) -> Markup:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    start = _SVG_START.search(text)
    if start is None:  # pragma: no cover - matplotlib always writes an <svg> element
        raise RuntimeError("matplotlib wrote no <svg> element")
    svg = text[start.start() :]
    # Natural size in CSS pixels (1 pt = 4/3 px); the page's CSS lets it shrink with the window.
    svg = _scope_ids(svg, prefix)
    svg = _SIZE.sub(
        lambda m: f'<svg{m[1]} width="{_px(m[2])}" height="{_px(m[3])}" class="chart" role="img"', svg, count=1
    )
    return Markup(svg)  # matplotlib escapes all text it writes into the SVG


def _render(draw: Any, width: float, height: float, prefix: str) -> Markup:
    """Draw with ``draw(fig)`` on a ``width`` x ``height`` inch figure; ids in the SVG start with ``prefix``."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(width, height)
        draw(fig)
        return _to_svg(fig, prefix)


def _check_lengths(where: str, **arrays: Sequence[Any]) -> None:
    lengths = {name: len(values) for name, values in arrays.items()}
    if len(set(lengths.values())) > 1:
        from drift.errors import ValidationError

        raise ValidationError(f"{where}: lists must have the same length, got {lengths}")


def class_distribution_svg(
    labels: Sequence[str], reference: Sequence[float | None], current: Sequence[float | None]
) -> Markup | None:
    """Horizontal bars, reference against current share per class.

    With more than :data:`MAX_CLASSES` classes, only those with the largest share (in
    either set) are drawn; the caption says so.
    """
    _check_lengths("outputs.class_distribution", labels=labels, reference=reference, current=current)
    if not labels:
        return None
    ref, cur = _nan(reference), _nan(current)
    order = list(range(len(labels)))
    if len(order) > MAX_CLASSES:
        order.sort(key=lambda i: -max(_zero(ref[i]), _zero(cur[i])))
        order = sorted(order[:MAX_CLASSES])
    names = [plain_text(labels[i], 30) for i in order]

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        ys = list(range(len(order)))
        ax.barh([y + 0.2 for y in ys], [ref[i] for i in order], height=0.4, color=REFERENCE_COLOR, label="reference")
        ax.barh([y - 0.2 for y in ys], [cur[i] for i in order], height=0.4, color=CURRENT_COLOR, label="current")
        ax.set_yticks(ys, names)
        ax.invert_yaxis()
        ax.set_xlabel("share of predictions")
        fig.legend(loc="outside lower center", ncols=2)
        title = "Predicted classes"
        if len(order) < len(labels):
            title += f" ({len(order)} largest of {len(labels)})"
        ax.set_title(title)

    return _render(draw, 5.0, 1.4 + 0.26 * len(order), "classes")


def _zero(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def confidence_histogram_svg(
    edges: Sequence[float], reference: Sequence[float | None], current: Sequence[float | None]
) -> Markup | None:
    """Step histogram of the top-class confidence, reference against current."""
    if not edges or len(edges) < 2:
        return None
    _check_lengths("outputs.confidence", bins=edges[1:], reference=reference, current=current)
    e = [float(x) for x in edges]

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        ax.stairs(_nan(reference), e, fill=True, color=REFERENCE_COLOR, alpha=0.6, label="reference")
        ax.stairs(_nan(current), e, color=CURRENT_COLOR, linewidth=1.8, label="current")
        ax.set_xlabel("confidence of the predicted class")
        ax.set_ylabel("share")
        ax.set_title("Confidence")
        ax.legend(loc="upper left")

    return _render(draw, 5.0, 2.8, "confidence")


def reliability_svg(
    reference: Sequence[tuple[float, float, int]] | None, current: Sequence[tuple[float, float, int]] | None
) -> Markup | None:
    """Reliability diagram: accuracy per confidence bin, with the diagonal of perfect calibration.

    Each series is a list of ``(confidence, accuracy, count)``; marker area follows the count.
    """
    if not reference and not current:
        return None

    def series(ax: Axes, bins: Sequence[tuple[float, float, int]], color: str, label: str) -> None:
        xs = [b[0] for b in bins]
        ys = [b[1] for b in bins]
        top = max((b[2] for b in bins), default=1) or 1
        ax.plot(xs, ys, color=color, linewidth=1.4, label=label)
        ax.scatter(xs, ys, s=[12 + 60 * b[2] / top for b in bins], color=color, zorder=3)

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], linestyle="--", color="#64748b", linewidth=1, label="perfect calibration")
        if reference:
            series(ax, reference, REFERENCE_COLOR, "reference")
        if current:
            series(ax, current, CURRENT_COLOR, "current")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_title("Reliability")
        ax.legend(loc="upper left")

    return _render(draw, 3.6, 3.6, "reliability")


def accuracy_svg(weeks: Sequence[dict[str, Any]]) -> Markup | None:
    """Estimated accuracy (line and interval band) against realized accuracy (points and error bars)
    over the weeks, with label coverage as light bars on a second axis.

    ``weeks`` are the normalized rows of ``performance.weeks``.
    """
    if not weeks:
        return None
    names = [plain_text(w["week"], 12) for w in weeks]
    est, est_lo, est_hi = (_nan([w[k] for w in weeks]) for k in ("estimated_accuracy", "estimate_low", "estimate_high"))
    real, real_lo, real_hi = (
        _nan([w[k] for w in weeks]) for k in ("realized_accuracy", "realized_low", "realized_high")
    )
    coverage = _nan([w["label_coverage"] for w in weeks])
    xs = list(range(len(weeks)))

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        cov = ax.twinx()
        cov.bar(xs, [_zero(c) for c in coverage], width=0.6, color="#e2e8f0", label="label coverage")
        cov.set_ylim(0, 1)
        cov.set_ylabel("label coverage", color="#64748b")
        cov.spines["right"].set_visible(True)
        ax.set_zorder(cov.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.fill_between(xs, est_lo, est_hi, color=CURRENT_COLOR, alpha=0.15, linewidth=0, label="estimate interval")
        ax.plot(xs, est, color=CURRENT_COLOR, marker="o", markersize=3, linewidth=1.6, label="estimated")
        lower = [r - lo if not (math.isnan(r) or math.isnan(lo)) else 0.0 for r, lo in zip(real, real_lo, strict=True)]
        upper = [hi - r if not (math.isnan(r) or math.isnan(hi)) else 0.0 for r, hi in zip(real, real_hi, strict=True)]
        ax.errorbar(xs, real, yerr=[lower, upper], fmt="s", color="#0f172a", markersize=4, capsize=3, label="realized")
        ax.set_xticks(xs, names, rotation=45 if len(xs) > 6 else 0, ha="right" if len(xs) > 6 else "center")
        ax.set_ylabel("accuracy")
        ax.set_title("Accuracy over the weeks")
        fig.legend(loc="outside lower center", ncols=4)

    return _render(draw, 6.4, 3.0, "accuracy")


@dataclass(frozen=True, kw_only=True)
class SparkPoint:
    x: float
    y: float
    drifted: bool
    label: str


@dataclass(frozen=True, kw_only=True)
class Sparkline:
    """Coordinates of a small trend line, drawn by the template.

    ``segments`` are SVG ``points`` strings (a missing week breaks the line);
    ``threshold_y`` is the drift threshold's height, if it fits the scale.
    """

    width: int
    height: int
    segments: tuple[str, ...]
    points: tuple[SparkPoint, ...]
    threshold_y: float | None


def sparkline(
    trend: Sequence[dict[str, Any]], threshold: float | None, width: int = 140, height: int = 30
) -> Sparkline | None:
    """Place the weekly scores of one column on a ``width`` x ``height`` box (no statistics)."""
    scores = [t["score"] for t in trend]
    known = [s for s in scores if s is not None]
    if not known:
        return None
    lo = min([0.0, *known])
    hi = max([*known, *([threshold] if threshold is not None else [])])
    span = (hi - lo) or 1.0
    pad = 4.0
    step = (width - 2 * pad) / max(len(trend) - 1, 1)

    def y_of(v: float) -> float:
        return round(height - pad - (v - lo) / span * (height - 2 * pad), 1)

    segments: list[str] = []
    current: list[str] = []
    points: list[SparkPoint] = []
    for i, t in enumerate(trend):
        s = t["score"]
        if s is None:
            if current:
                segments.append(" ".join(current))
            current = []
            continue
        x = round(pad + i * step, 1)
        y = y_of(s)
        current.append(f"{x},{y}")
        points.append(SparkPoint(x=x, y=y, drifted=bool(t.get("drifted")), label=f"{t['week']}: {s:.4g}"))
    if current:
        segments.append(" ".join(current))
    threshold_y = y_of(threshold) if threshold is not None else None
    return Sparkline(
        width=width, height=height, segments=tuple(segments), points=tuple(points), threshold_y=threshold_y
    )
