"""The production simulator: plays the mobile app's backend for the demo.

What it simulates is a :class:`Scenario`: the production pool (images never used in training)
and its labels, how a drawn image varies and drifts, the per-image features, how images are
written and how the model predicts. :func:`digits_scenario` (the default) is the digits demo;
:func:`jobs.demo.photos.photos_scenario` is the photo-quality demo (RGB PNGs, photo features,
camera drift, 2 probabilities and 64-float embeddings).

Each :meth:`ProductionSimulator.simulate_week` call draws ``rows_per_week`` images from the
pool, varies them slightly (digits: shift, gain), and from ``drift_from_week`` on drifts a share
of them with the configured transforms. It classifies them with the model it is given (``.keras``
or ``.tflite``) and writes, as the app's backend would (the digits columns shown):

- rows into ``out_dir/production.db``, table ``prediction_log`` (plain sqlite3; this is the
  "outside world", not driftkeeper's storage):

  ========================  =====================================================
  id                        INTEGER PRIMARY KEY AUTOINCREMENT
  prediction_id             TEXT NOT NULL UNIQUE (uuid5 of model, seed, week, row)
  logged_at                 TEXT NOT NULL, ISO-8601 UTC ``...+00:00``
  model_name, model_version TEXT, INTEGER
  brightness .. edge_density  REAL: the scenario's feature columns (digits:
                            :mod:`jobs.ml.image_features`)
  device_tier, camera       TEXT: ``low``/``mid``/``high``, ``front``/``back``
  probabilities, embedding  TEXT: JSON arrays of 10 and 32 floats (photos: 2 and 64)
  predicted_label           TEXT: a class label (``"0"`` .. ``"9"``), confidence REAL
  input_uri                 TEXT: absolute path of ``images/week_XX/<prediction_id>.png``
  ========================  =====================================================

- late labels: a ``label_share`` of rows get a label ``label_delay_days`` after their
  prediction; each call releases the labels due by its simulated "now" (the end of the week)
  into ``out_dir/labels/labels_<date>.jsonl``, one ``{"prediction_id", "label", "labelled_at"}``
  per line. Label files are written to a hidden temporary name and renamed, so a reader never
  sees half a file.

The simulator keeps its own state (ground truth, pending labels, simulated weeks) in the
``simulator_truth`` and ``simulator_week`` tables of the same database; ingestion should read
only ``prediction_log``. Everything is deterministic for a seed: the drawn images, drift, labels,
delays and ids do not depend on the model.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drift.errors import BadInputError, UnknownMethodError, ValidationError
from jobs.demo.digits import DEFAULT_SPLIT_SEED
from jobs.demo.scenario import LOG_HEAD, LOG_TAIL, Predict, Scenario, contract_predict, digits_scenario

__all__ = ["Predict", "ProductionSimulator", "Scenario", "WeekSummary", "contract_predict", "digits_scenario"]

DEVICE_TIERS = ("low", "mid", "high")
CAMERAS = ("front", "back")
CONFIDENT = 0.9
_NAMESPACE = uuid.UUID("6f1c6a52-4d0e-5b8e-9a57-2a4c1d0e7b11")
_STRENGTH_LEVELS = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prediction_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    prediction_id TEXT NOT NULL UNIQUE,
    logged_at TEXT NOT NULL,
    model_name TEXT,
    model_version INTEGER,
    {features},
    device_tier TEXT,
    camera TEXT,
    probabilities TEXT,
    embedding TEXT,
    predicted_label TEXT,
    confidence REAL,
    input_uri TEXT
);
CREATE INDEX IF NOT EXISTS ix_prediction_log_logged_at ON prediction_log (logged_at, id);
CREATE TABLE IF NOT EXISTS simulator_truth (
    prediction_id TEXT PRIMARY KEY,
    week INTEGER NOT NULL,
    true_label TEXT NOT NULL,
    drift_kind TEXT,
    drift_strength REAL,
    labelled_at TEXT,
    released_in TEXT
);
CREATE INDEX IF NOT EXISTS ix_simulator_truth_due ON simulator_truth (released_in, labelled_at);
CREATE TABLE IF NOT EXISTS simulator_week (
    week INTEGER PRIMARY KEY,
    start TEXT NOT NULL,
    "end" TEXT NOT NULL,
    model_version INTEGER,
    summary TEXT NOT NULL
);
"""


def _log_columns(feature_columns: Sequence[str]) -> tuple[str, ...]:
    """The ``prediction_log`` columns the simulator writes, in table order (``id`` aside)."""
    return (*LOG_HEAD, *feature_columns, *LOG_TAIL)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, kw_only=True)
class WeekSummary:
    week: int
    start: datetime
    end: datetime
    model_version: int
    rows: int
    drifted: bool
    drifted_rows: int
    accuracy: float
    accuracy_clean: float | None
    accuracy_drifted: float | None
    mean_confidence: float
    confidently_wrong_rate: float
    labels_scheduled: int
    labels_released: int
    label_file: Path | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "start": _iso(self.start),
            "end": _iso(self.end),
            "label_file": str(self.label_file) if self.label_file else None,
            "seconds": round(self.seconds, 3),
        }


def read_images(paths: Sequence[str | Path], mode: Literal["L", "RGB"] = "L") -> np.ndarray:
    """Read the PNGs written by the simulator back as float32 in [0, 1]: ``(N, H, W)`` for ``"L"``,
    ``(N, H, W, 3)`` for ``"RGB"``."""
    from PIL import Image

    out = []
    for p in paths:
        try:
            with Image.open(p) as img:
                out.append(np.asarray(img.convert(mode), dtype=np.float32) / 255.0)
        except OSError as exc:
            raise BadInputError(str(p), f"cannot read image: {exc}") from exc
    return np.stack(out) if out else np.zeros((0, 32, 32) if mode == "L" else (0, 32, 32, 3), np.float32)


class ProductionSimulator:
    """Plays the app backend over simulated weeks; see the module docstring for what it writes."""

    def __init__(
        self,
        out_dir: Path,
        *,
        model_name: str | None = None,
        seed: int = 0,
        rows_per_week: int = 2000,
        drift_from_week: int = 3,
        drift_kinds: Sequence[str] | None = None,
        label_share: float = 0.3,
        label_delay_days: tuple[float, float] = (3, 21),
        drift_share: float = 0.7,
        drift_strength: tuple[float, float] = (0.5, 0.9),
        data_seed: int = DEFAULT_SPLIT_SEED,
        scenario: Scenario | None = None,
    ) -> None:
        """``scenario`` defaults to :func:`digits_scenario` of ``data_seed``; ``model_name`` and
        ``drift_kinds`` default to the scenario's name and default drift kinds."""
        self.scenario = scenario or digits_scenario(data_seed)
        drift_kinds = self.scenario.default_drift_kinds if drift_kinds is None else drift_kinds
        for kind in drift_kinds:
            if kind not in self.scenario.drift_kinds:
                raise UnknownMethodError("drift transform", kind, list(self.scenario.drift_kinds))
        if not drift_kinds:
            raise ValidationError("drift_kinds must name at least one transform")
        if rows_per_week < 1:
            raise ValidationError(f"rows_per_week must be >= 1, got {rows_per_week}")
        if not 0.0 <= label_share <= 1.0 or not 0.0 <= drift_share <= 1.0:
            raise ValidationError("label_share and drift_share must be in [0, 1]")
        lo, hi = label_delay_days
        if not 0 <= lo <= hi:
            raise ValidationError(f"label_delay_days must be (min, max) with 0 <= min <= max, got {label_delay_days}")
        s_lo, s_hi = drift_strength
        if not 0.0 <= s_lo <= s_hi <= 1.0:
            raise ValidationError(f"drift_strength must be (min, max) within [0, 1], got {drift_strength}")
        self.out_dir = Path(out_dir)
        self.model_name = model_name or self.scenario.name
        self.seed = seed
        self.rows_per_week = rows_per_week
        self.drift_from_week = drift_from_week
        self.drift_kinds = tuple(drift_kinds)
        self.label_share = label_share
        self.label_delay_days = (float(lo), float(hi))
        self.drift_share = drift_share
        self.drift_strength = (float(s_lo), float(s_hi))
        self.data_seed = data_seed
        self._columns = _log_columns(self.scenario.feature_columns)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.labels_dir.mkdir(exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA.format(features=", ".join(f"{c} REAL" for c in self.scenario.feature_columns)))
            found = tuple(r[1] for r in conn.execute("PRAGMA table_info(prediction_log)").fetchall()[1:])
        if found != self._columns:
            raise ValidationError(f"{self.db_path} holds another scenario's prediction_log (columns {found[4:-6]})")

    @property
    def db_path(self) -> Path:
        return self.out_dir / "production.db"

    @property
    def db_url(self) -> str:
        """SQLAlchemy URL of the production database (for the ingestion config)."""
        return f"sqlite:///{self.db_path.resolve()}"

    @property
    def labels_dir(self) -> Path:
        return self.out_dir / "labels"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, timeout=30)
        try:
            with conn:  # one transaction: commit on success, roll back on error
                yield conn
        finally:
            conn.close()

    def _draw(self, week: int) -> dict[str, Any]:
        """Everything random about a week, independent of the model."""
        rng = np.random.default_rng([self.seed, week])
        sc = self.scenario
        pool_x, pool_y = sc.pool_x, sc.pool_y
        n = self.rows_per_week
        idx = rng.integers(len(pool_y), size=n)
        images = sc.vary(pool_x[idx], int(rng.integers(2**31)))
        drifting = week >= self.drift_from_week
        drifted = (rng.random(n) < self.drift_share) if drifting else np.zeros(n, bool)
        kinds = rng.integers(len(self.drift_kinds), size=n)
        levels = np.linspace(*self.drift_strength, _STRENGTH_LEVELS)
        level = rng.integers(_STRENGTH_LEVELS, size=n)
        drift_seed = int(rng.integers(2**31))
        for k, kind in enumerate(self.drift_kinds):
            for j, strength in enumerate(levels):
                sel = drifted & (kinds == k) & (level == j)
                if sel.any():
                    images[sel] = sc.drift(images[sel], kind, float(strength), drift_seed + 31 * k + j)
        pixels = sc.to_pixels(images)  # what the PNG holds and the app sees
        tier_p = (0.5, 0.35, 0.15) if drifting else (0.3, 0.5, 0.2)
        return {
            "labels": pool_y[idx],
            "pixels": pixels,
            "drifted": drifted,
            "kinds": np.where(drifted, kinds, -1),
            "strengths": np.where(drifted, levels[level], 0.0),
            "offsets": np.sort(rng.uniform(0, 7 * 86400, size=n)),
            "tiers": rng.choice(len(DEVICE_TIERS), size=n, p=tier_p),
            "front": rng.random(n) < np.where(drifted, 0.5, 0.2),
            "labelled": rng.random(n) < self.label_share,
            "delays": rng.uniform(*self.label_delay_days, size=n),
        }

    def simulate_week(self, week: int, model_path: Path, model_version: int, start: datetime) -> WeekSummary:
        """Simulate one week starting at ``start`` (tz-aware) with the given model; see the module doc."""
        started = time.perf_counter()
        if start.tzinfo is None:
            raise ValidationError("start must be timezone-aware (UTC)")
        if week < 0:
            raise ValidationError(f"week must be >= 0, got {week}")
        start = start.astimezone(UTC)
        end = start + timedelta(days=7)
        model_path = Path(model_path)
        with self._connect() as conn:
            if conn.execute("SELECT 1 FROM simulator_week WHERE week = ?", (week,)).fetchone():
                raise ValidationError(f"week {week} was already simulated in {self.db_path}")
        d = self._draw(week)
        sc = self.scenario
        probabilities, embeddings = (np.asarray(a, np.float32) for a in sc.predict(model_path, d["pixels"]))
        if probabilities.shape != (self.rows_per_week, len(sc.class_labels)) or len(embeddings) != len(probabilities):
            raise ValidationError(f"predict gave probabilities {probabilities.shape} and embeddings {embeddings.shape} "
                                  f"for {self.rows_per_week} images of {len(sc.class_labels)} classes")  # fmt: skip
        features = sc.features(d["pixels"])
        pred_idx = probabilities.argmax(axis=1)
        correct = pred_idx == d["labels"]
        conf = probabilities.max(axis=1)

        image_dir = self.out_dir / "images" / f"week_{week:02d}"
        image_dir.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        log_rows, truth_rows = [], []
        for i in range(self.rows_per_week):
            pid = str(uuid.uuid5(_NAMESPACE, f"{self.model_name}/{self.seed}/{week}/{i}"))
            png = image_dir / f"{pid}.png"
            img = Image.fromarray(d["pixels"][i])
            (img if img.mode == sc.image_mode else img.convert(sc.image_mode)).save(png, optimize=False)
            logged_at = start + timedelta(seconds=float(d["offsets"][i]))
            log_rows.append(
                (
                    pid,
                    _iso(logged_at),
                    self.model_name,
                    model_version,
                    *(float(v) for v in features[i]),
                    DEVICE_TIERS[d["tiers"][i]],
                    "front" if d["front"][i] else "back",
                    json.dumps([round(float(p), 6) for p in probabilities[i]]),
                    json.dumps([round(float(e), 5) for e in embeddings[i]]),
                    sc.class_labels[pred_idx[i]],
                    float(conf[i]),
                    str(png.resolve()),
                )
            )
            labelled_at = logged_at + timedelta(days=float(d["delays"][i])) if d["labelled"][i] else None
            kind = self.drift_kinds[d["kinds"][i]] if d["drifted"][i] else None
            truth_rows.append(
                (
                    pid,
                    week,
                    sc.class_labels[d["labels"][i]],
                    kind,
                    float(d["strengths"][i]) if kind else None,
                    _iso(labelled_at) if labelled_at else None,
                )
            )
        placeholders = ", ".join("?" for _ in self._columns)
        drifted = d["drifted"]
        summary_fields: dict[str, Any] = {
            "week": week,
            "start": start,
            "end": end,
            "model_version": model_version,
            "rows": self.rows_per_week,
            "drifted": bool(drifted.any()),
            "drifted_rows": int(drifted.sum()),
            "accuracy": float(correct.mean()),
            "accuracy_clean": float(correct[~drifted].mean()) if (~drifted).any() else None,
            "accuracy_drifted": float(correct[drifted].mean()) if drifted.any() else None,
            "mean_confidence": float(conf.mean()),
            "confidently_wrong_rate": float((~correct & (conf >= CONFIDENT)).mean()),
            "labels_scheduled": int(d["labelled"].sum()),
        }
        with self._connect() as conn:
            conn.executemany(
                f"INSERT INTO prediction_log ({', '.join(self._columns)}) VALUES ({placeholders})", log_rows
            )
            conn.executemany(
                "INSERT INTO simulator_truth (prediction_id, week, true_label, drift_kind, drift_strength, "
                "labelled_at) VALUES (?, ?, ?, ?, ?, ?)",
                truth_rows,
            )
            conn.execute(
                'INSERT INTO simulator_week (week, start, "end", model_version, summary) VALUES (?, ?, ?, ?, ?)',
                (week, _iso(start), _iso(end), model_version, json.dumps(summary_fields, default=_iso)),
            )
        released, label_file = self._release(end)
        return WeekSummary(
            **summary_fields,
            labels_released=released,
            label_file=label_file,
            seconds=time.perf_counter() - started,
        )

    def release_labels(self, until: datetime) -> int:
        """Release every pending label with ``labelled_at <= until`` into one file; return how many."""
        if until.tzinfo is None:
            raise ValidationError("until must be timezone-aware (UTC)")
        return self._release(until.astimezone(UTC))[0]

    def _release(self, now: datetime) -> tuple[int, Path | None]:
        with self._connect() as conn:
            due = conn.execute(
                "SELECT prediction_id, true_label, labelled_at FROM simulator_truth "
                "WHERE released_in IS NULL AND labelled_at IS NOT NULL AND labelled_at <= ? "
                "ORDER BY labelled_at, prediction_id",
                (_iso(now),),
            ).fetchall()
            if not due:
                return 0, None
            path = self._label_file_name(now)
            tmp = self.labels_dir / f".{path.name}.tmp"
            with tmp.open("w") as fh:
                for pid, label, labelled_at in due:
                    fh.write(json.dumps({"prediction_id": pid, "label": label, "labelled_at": labelled_at}) + "\n")
            conn.executemany(
                "UPDATE simulator_truth SET released_in = ? WHERE prediction_id = ?",
                [(path.name, pid) for pid, _, _ in due],
            )
            tmp.replace(path)  # visible before the commit: a crash re-releases, never loses, labels
        return len(due), path

    def _label_file_name(self, now: datetime) -> Path:
        base = f"labels_{now:%Y-%m-%d}"
        path = self.labels_dir / f"{base}.jsonl"
        n = 2
        while path.exists():
            path = self.labels_dir / f"{base}_{n}.jsonl"
            n += 1
        return path

    def week_summaries(self) -> list[dict[str, Any]]:
        """The stored summaries of the simulated weeks, in week order."""
        with self._connect() as conn:
            rows = conn.execute("SELECT summary FROM simulator_week ORDER BY week").fetchall()
        return [json.loads(r[0]) for r in rows]
