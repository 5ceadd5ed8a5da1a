"""TFLite export of a segmenter (:mod:`jobs.ml.segmentation`): three variants, verified per pixel.

:func:`export_segmenter` writes, into ``out_dir``:

- ``saved_model/``: Keras 3 ``model.export(..., format="tf_saved_model")`` of the model with
  one named output, ``mask`` (signature ``serving_default``, input ``image``);
- ``model.tflite``, ``model_dynamic.tflite``, ``model_int8.tflite``: float32, dynamic-range
  and full-integer variants (:func:`jobs.ml.export.convert_variant`; int8 keeps float32
  input and output);
- ``labels.txt``: one class label a line, line ``i`` is class index ``i``;
- ``manifest.json``: input normalisation, the mask output (``[1, H, W, C]`` per-pixel softmax,
  argmax over the last axis gives the class index into the labels), each file's size, sha256
  and verification.

Each variant runs through ``ai_edge_litert`` on ``x_verify`` and must agree with Keras on the
per-pixel argmax for at least ``min_pixel_agreement`` of the pixels (``min_pixel_agreement_int8``
for int8, the same by default) and fit ``size_budget_bytes``. A failed check is reported (the
report's ``passed`` and ``reasons``, the manifest's ``verified``), never raised; a conversion or
an interpreter that fails raises :class:`~drift.errors.ExportError`.

``representative`` and ``x_verify`` are model-ready float32 inputs ``(N, H, W, 3)`` in [-1, 1]
(:func:`jobs.ml.segmentation.to_model_input` of uint8 images).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drift.errors import ExportError, ValidationError
from jobs.ml import segmentation as seg

SIGNATURE = "serving_default"
MANIFEST_FORMAT = "driftkeeper-segmentation-manifest/1"
_REQUIRED_FIELDS = ("model_name", "version")
_PASSED_THROUGH = ("model_name", "version", "parent_version", "training_data_window", "drift_run_id")


@dataclass(frozen=True, kw_only=True)
class SegVariantReport:
    name: str
    path: Path
    quantisation: str
    size_bytes: int
    size_budget_bytes: int
    sha256: str
    pixel_agreement: float
    min_pixel_agreement: float
    max_abs_prob_diff: float
    convert_seconds: float
    verify_seconds: float
    passed: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "quantisation": self.quantisation,
            "size_bytes": self.size_bytes,
            "size_budget_bytes": self.size_budget_bytes,
            "sha256": self.sha256,
            "pixel_agreement": self.pixel_agreement,
            "min_pixel_agreement": self.min_pixel_agreement,
            "max_abs_prob_diff": self.max_abs_prob_diff,
            "convert_seconds": round(self.convert_seconds, 3),
            "verify_seconds": round(self.verify_seconds, 3),
            "passed": self.passed,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, kw_only=True)
class SegExportReport:
    passed: bool
    out_dir: Path
    saved_model_dir: Path
    labels_path: Path
    manifest_path: Path
    variants: tuple[SegVariantReport, ...]
    n_verify: int
    saved_model_seconds: float
    seconds: float

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the export failed (empty when it passed), each prefixed with its variant."""
        return tuple(f"{v.name}: {r}" for v in self.variants for r in v.reasons)

    def variant(self, name: str) -> SegVariantReport:
        for v in self.variants:
            if v.name == name:
                return v
        raise ValidationError(f"no variant {name!r}; allowed: {', '.join(v.name for v in self.variants)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "out_dir": str(self.out_dir),
            "saved_model_dir": str(self.saved_model_dir),
            "labels_path": str(self.labels_path),
            "manifest_path": str(self.manifest_path),
            "variants": [v.to_dict() for v in self.variants],
            "n_verify": self.n_verify,
            "saved_model_seconds": round(self.saved_model_seconds, 3),
            "seconds": round(self.seconds, 3),
            "reasons": list(self.reasons),
        }


class TFLiteSegmenter:
    """Runs an exported ``.tflite`` segmenter with ai-edge-litert: ``predict(x) -> (N, H, W, C)``."""

    def __init__(self, path: Path, *, num_threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        try:
            interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
            self._runner = interpreter.get_signature_runner(SIGNATURE)
            signature = interpreter.get_signature_list()[SIGNATURE]
        except Exception as exc:
            raise ExportError(f"cannot load TFLite model {self.path}: {exc}") from exc
        if signature["inputs"] != [seg.INPUT_NAME] or signature["outputs"] != [seg.OUTPUT_NAME]:
            raise ExportError(
                f"{self.path} has inputs {signature['inputs']} and outputs {signature['outputs']}, "
                f"expected [{seg.INPUT_NAME!r}] and [{seg.OUTPUT_NAME!r}]"
            )

    def predict(self, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
        parts = []
        for start in range(0, len(x), batch_size):
            try:
                out = self._runner(**{seg.INPUT_NAME: np.ascontiguousarray(x[start : start + batch_size])})
            except Exception as exc:
                raise ExportError(f"running TFLite model {self.path} failed: {exc}") from exc
            parts.append(np.asarray(out[seg.OUTPUT_NAME], dtype=np.float32))
        return np.concatenate(parts)


def _model_input(x: np.ndarray, shape: tuple[int, int, int], name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 4 or tuple(arr.shape[1:]) != shape or len(arr) == 0:
        raise ValidationError(f"{name} must be a non-empty (N, {', '.join(map(str, shape))}) array, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValidationError(f"{name} must be model-ready floats (jobs.ml.preprocess), got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValidationError(f"{name} must be finite model-ready inputs (jobs.ml.preprocess with the contract)")
    return arr.astype(np.float32)


def _check_fields(fields: dict[str, Any]) -> None:
    missing = [k for k in _REQUIRED_FIELDS if fields.get(k) in (None, "")]
    if missing:
        raise ValidationError(f"manifest_fields lacks {', '.join(missing)} (required: {', '.join(_REQUIRED_FIELDS)})")
    version = fields["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValidationError(f"manifest_fields.version must be an integer >= 1, got {version!r}")


def export_segmenter(
    keras_path: Path,
    out_dir: Path,
    representative: np.ndarray,
    x_verify: np.ndarray,
    class_labels: Sequence[str],
    manifest_fields: dict[str, Any],
    size_budget_bytes: int,
    *,
    min_pixel_agreement: float = 0.99,
    min_pixel_agreement_int8: float | None = None,
    representative_samples: int = 64,
) -> SegExportReport:
    """Export ``keras_path`` to ``out_dir`` and verify every variant; see the module docstring.

    ``manifest_fields`` must hold ``model_name`` and ``version`` (int >= 1); ``parent_version``,
    ``training_data_window`` and ``drift_run_id`` are written as given (``None`` when absent),
    other keys go under ``extra``. The input size and number of classes come from the model.
    """
    from jobs.ml.export import QUANTISATION, VARIANT_FILES, convert_variant, sha256_file

    _check_fields(manifest_fields)
    if size_budget_bytes <= 0:
        raise ValidationError(f"size_budget_bytes must be > 0, got {size_budget_bytes}")
    thresholds = {name: min_pixel_agreement for name in VARIANT_FILES}
    if min_pixel_agreement_int8 is not None:
        thresholds["int8"] = min_pixel_agreement_int8
    if not all(0.0 <= t <= 1.0 for t in thresholds.values()):
        raise ValidationError(f"pixel agreement thresholds must lie in [0, 1], got {thresholds}")
    started = time.perf_counter()
    model = seg.load_segmenter(Path(keras_path))
    height, width, channels = (int(d) for d in model.input.shape[1:])
    n_classes = int(model.output.shape[-1])
    labels = tuple(str(label) for label in class_labels)
    if len(labels) != n_classes or len(set(labels)) != n_classes:
        raise ValidationError(f"need {n_classes} distinct class labels in output order, got {list(labels)}")
    rep = _model_input(representative, (height, width, channels), "representative")
    x = _model_input(x_verify, (height, width, channels), "x_verify")
    rep = rep[np.linspace(0, len(rep) - 1, min(representative_samples, len(rep))).astype(int)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    import keras  # after load_segmenter, which picks the TensorFlow backend

    named = keras.Model(model.input, {seg.OUTPUT_NAME: model.output}, name=f"{model.name}_export")
    saved_model_dir = out_dir / "saved_model"
    t0 = time.perf_counter()
    try:
        named.export(str(saved_model_dir), format="tf_saved_model", verbose=False)
    except Exception as exc:
        raise ExportError(f"SavedModel export of {keras_path} failed: {exc}") from exc
    saved_model_seconds = time.perf_counter() - t0
    reference = np.concatenate([np.asarray(model(x[i : i + 32], training=False)) for i in range(0, len(x), 32)])
    ref_class = reference.argmax(axis=-1)

    reports = []
    for name, filename in VARIANT_FILES.items():
        t0 = time.perf_counter()
        path = out_dir / filename
        path.write_bytes(convert_variant(saved_model_dir, name, rep))
        convert_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = TFLiteSegmenter(path).predict(x)
        verify_seconds = time.perf_counter() - t0
        if got.shape != reference.shape:
            raise ExportError(f"{path.name} returns masks of shape {got.shape}, Keras {reference.shape}")
        agreement = float((got.argmax(axis=-1) == ref_class).mean())
        size = path.stat().st_size
        reasons = []
        if agreement < thresholds[name]:
            reasons.append(f"pixel argmax agreement {agreement:.4f} with Keras is below {thresholds[name]}")
        if size > size_budget_bytes:
            reasons.append(f"size {size} bytes exceeds the budget of {size_budget_bytes} bytes")
        reports.append(
            SegVariantReport(
                name=name,
                path=path,
                quantisation=QUANTISATION[name],
                size_bytes=size,
                size_budget_bytes=size_budget_bytes,
                sha256=sha256_file(path),
                pixel_agreement=agreement,
                min_pixel_agreement=thresholds[name],
                max_abs_prob_diff=float(np.abs(got - reference).max()),
                convert_seconds=convert_seconds,
                verify_seconds=verify_seconds,
                passed=not reasons,
                reasons=tuple(reasons),
            )
        )

    labels_path = out_dir / "labels.txt"
    labels_path.write_text("".join(f"{label}\n" for label in labels))
    manifest = _manifest(manifest_fields, labels, (height, width, channels), sha256_file(labels_path), reports)
    manifest_path = out_dir / "manifest.json"
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    tmp.replace(manifest_path)
    return SegExportReport(
        passed=all(r.passed for r in reports),
        out_dir=out_dir,
        saved_model_dir=saved_model_dir,
        labels_path=labels_path,
        manifest_path=manifest_path,
        variants=tuple(reports),
        n_verify=len(x),
        saved_model_seconds=saved_model_seconds,
        seconds=time.perf_counter() - started,
    )


def _manifest(
    fields: dict[str, Any],
    labels: tuple[str, ...],
    shape: tuple[int, int, int],
    labels_sha256: str,
    reports: list[SegVariantReport],
) -> dict[str, Any]:
    height, width, channels = shape
    contract = seg.segmenter_contract(height, labels)
    passed = [r for r in reports if r.passed]
    recommended = min(passed, key=lambda r: r.size_bytes).path.name if passed else None
    extra = {k: v for k, v in fields.items() if k not in _PASSED_THROUGH}
    return {
        "format": MANIFEST_FORMAT,
        "task": "segmentation",
        "model_name": fields["model_name"],
        "version": fields["version"],
        "parent_version": fields.get("parent_version"),
        "training_data_window": fields.get("training_data_window"),
        "drift_run_id": fields.get("drift_run_id"),
        "signature": SIGNATURE,
        "input": {
            "name": seg.INPUT_NAME,
            "shape": [1, height, width, channels],
            "dtype": "float32",
            "normalisation": {
                "color_mode": contract["color_mode"],
                "resize": contract["resize"],
                "range": [-1.0, 1.0],
                "scale": contract["scale"],
                "offset": contract["offset"],
                "formula": contract["formula"],
            },
        },
        "outputs": {
            seg.OUTPUT_NAME: {
                "shape": [1, height, width, len(labels)],
                "dtype": "float32",
                "activation": "softmax",
                "per_pixel": True,
                "class_axis": -1,
                "decode": "argmax over the last axis gives each pixel's class index into labels",
            }
        },
        "labels": list(labels),
        "labels_file": {"name": "labels.txt", "sha256": labels_sha256},
        "ignore_index": seg.IGNORE,
        "files": {
            r.path.name: {
                "variant": r.name,
                "quantisation": r.quantisation,
                "bytes": r.size_bytes,
                "sha256": r.sha256,
                "verified": r.passed,
                "pixel_agreement": r.pixel_agreement,
                "min_pixel_agreement": r.min_pixel_agreement,
                "max_abs_prob_diff": r.max_abs_prob_diff,
            }
            for r in reports
        },
        "recommended_file": recommended,
        "all_checks_passed": len(passed) == len(reports),
        **({"extra": extra} if extra else {}),
    }
