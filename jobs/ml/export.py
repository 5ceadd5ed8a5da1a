"""Export a Keras model for phones: SavedModel, three TFLite variants, verification, manifest.

:func:`export_tflite` writes into ``out_dir``::

    saved_model/            the SavedModel (Keras 3 ``model.export(format="tf_saved_model")``)
    model.tflite            float32
    model_dynamic.tflite    dynamic-range quantisation (int8 weights, float activations)
    model_int8.tflite       full-integer quantisation: int8 weights and activations, calibrated on
                            the representative dataset; input and output stay float32 (the
                            interpreter quantises at the edges) so the app feeds the same [0, 1]
                            floats and reads the same probabilities whichever file it downloads.
    labels.txt              one class label per line, in output order
    manifest.json           what the app needs to download, verify and swap the model

Each ``.tflite`` has one signature, ``serving_default``: input ``image`` ``(N, H, W, C)`` float32,
normalised per the model's contract; outputs ``probabilities`` (the model's own last layer:
softmax, logits or one sigmoid unit, as the contract says) and ``embedding`` (the contract's
embedding layer), so the app can log the embedding too. The manifest carries the whole
contract. Every file is verified by running it with ai-edge-litert against the Keras model on
``x_verify`` (model-ready inputs, preprocessed by :mod:`jobs.ml.preprocess`): class-argmax
agreement, largest probability difference, size against the budget. The export passes only
if every variant passes. Checks that fail are reported in :class:`ExportReport`; machinery
that fails (a model that cannot be loaded or converted) raises :class:`~drift.errors.ExportError`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drift.errors import ExportError, ValidationError
from jobs.ml import network
from jobs.ml.contract import Contract

VARIANT_FILES: dict[str, str] = {
    "float32": "model.tflite",
    "dynamic": "model_dynamic.tflite",
    "int8": "model_int8.tflite",
}
QUANTISATION: dict[str, str] = {
    "float32": "none (float32 weights and activations)",
    "dynamic": "dynamic-range (int8 weights, float32 activations)",
    "int8": "full-integer (int8 weights and activations, float32 input/output)",
}
SIGNATURE = "serving_default"
INPUT_NAME = "image"
MANIFEST_FORMAT = "driftkeeper-tflite-manifest/2"
_REQUIRED_FIELDS = ("model_name", "version")


@dataclass(frozen=True, kw_only=True)
class VariantReport:
    name: str
    path: Path
    quantisation: str
    size_bytes: int
    size_budget_bytes: int
    sha256: str
    agreement: float
    min_agreement: float
    max_abs_prob_diff: float
    max_abs_embedding_diff: float
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
            "agreement": self.agreement,
            "min_agreement": self.min_agreement,
            "max_abs_prob_diff": self.max_abs_prob_diff,
            "max_abs_embedding_diff": self.max_abs_embedding_diff,
            "convert_seconds": round(self.convert_seconds, 3),
            "verify_seconds": round(self.verify_seconds, 3),
            "passed": self.passed,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, kw_only=True)
class ExportReport:
    passed: bool
    out_dir: Path
    saved_model_dir: Path
    labels_path: Path
    manifest_path: Path
    variants: tuple[VariantReport, ...]
    n_verify: int
    saved_model_seconds: float
    seconds: float

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the export failed (empty when it passed), each prefixed with its variant."""
        return tuple(f"{v.name}: {r}" for v in self.variants for r in v.reasons)

    def variant(self, name: str) -> VariantReport:
        for v in self.variants:
            if v.name == name:
                return v
        raise ValidationError(f"no variant {name!r}; allowed: {', '.join(VARIANT_FILES)}")

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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class TFLiteClassifier:
    """Runs a ``.tflite`` file written by :func:`export_tflite` with ai-edge-litert.

    >>> clf = TFLiteClassifier(Path("model.tflite"), contract)  # doctest: +SKIP
    >>> clf.predict(model_inputs).probabilities.shape  # doctest: +SKIP
    (N, K)
    """

    def __init__(self, path: Path, contract: Contract, *, num_threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.contract = contract
        try:
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
            self._runner = self._interpreter.get_signature_runner(SIGNATURE)
        except Exception as exc:
            raise ExportError(f"cannot load TFLite model {self.path}: {exc}") from exc
        outputs = set(self._interpreter.get_signature_list()[SIGNATURE]["outputs"])
        if not {network.PROBABILITIES, network.EMBEDDING} <= outputs:
            raise ExportError(f"{self.path} has outputs {sorted(outputs)}, expected probabilities, embedding")

    def predict(self, x: np.ndarray, batch_size: int = 256) -> network.Predictions:
        """Class probabilities and embeddings for model-ready inputs ``(N, H, W, C)``."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.contract.input_shape:
            raise ValidationError(f"{self.path} takes inputs {self.contract.input_shape}, got {x.shape[1:]}")
        probs, embs = [], []
        for start in range(0, len(x), batch_size):
            try:
                out = self._runner(**{INPUT_NAME: x[start : start + batch_size]})
            except Exception as exc:
                raise ExportError(f"running TFLite model {self.path} failed: {exc}") from exc
            probs.append(network.class_probabilities(np.asarray(out[network.PROBABILITIES]), self.contract))
            emb = np.asarray(out[network.EMBEDDING], dtype=np.float32)
            embs.append(emb.reshape(len(emb), -1))
        if not probs:
            return network.Predictions(
                probabilities=np.zeros((0, self.contract.n_classes), np.float32),
                embeddings=np.zeros((0, self.contract.embedding_dim), np.float32),
            )
        return network.Predictions(probabilities=np.concatenate(probs), embeddings=np.concatenate(embs))


def convert_variant(saved_model_dir: Path, variant: str, representative: np.ndarray) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if variant in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "int8":

        def samples() -> Any:
            for i in range(len(representative)):
                yield [representative[i : i + 1]]

        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        return bytes(converter.convert())
    except Exception as exc:
        raise ExportError(f"TFLite conversion ({variant}) of {saved_model_dir} failed: {exc}") from exc


def check_variant(agreement: float, min_agreement: float, size_bytes: int, size_budget_bytes: int) -> tuple[str, ...]:
    """Why a variant fails its checks (empty when it passes)."""
    reasons = []
    if agreement < min_agreement:
        reasons.append(f"argmax agreement {agreement:.4f} with Keras is below {min_agreement}")
    if size_bytes > size_budget_bytes:
        reasons.append(f"size {size_bytes} bytes exceeds the budget of {size_budget_bytes} bytes")
    return tuple(reasons)


def _check_manifest_fields(fields: dict[str, Any]) -> None:
    missing = [k for k in _REQUIRED_FIELDS if fields.get(k) in (None, "")]
    if missing:
        raise ValidationError(f"manifest_fields lacks {', '.join(missing)} (required: {', '.join(_REQUIRED_FIELDS)})")
    version = fields["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValidationError(f"manifest_fields.version must be an integer >= 1, got {version!r}")


def export_tflite(
    keras_path: Path,
    out_dir: Path,
    representative: np.ndarray,
    x_verify: np.ndarray,
    contract: Contract,
    manifest_fields: dict[str, Any],
    size_budget_bytes: int,
    *,
    min_agreement: float = 0.99,
    min_agreement_int8: float = 0.97,
    representative_samples: int = 200,
) -> ExportReport:
    """Export ``keras_path`` to ``out_dir`` and verify every variant; see the module docstring.

    ``representative`` and ``x_verify`` are model-ready inputs (float32 ``(N, H, W, C)``, as
    :func:`jobs.ml.preprocess.model_input` or an ImageSet batch gives them). ``manifest_fields``
    must hold ``model_name`` and ``version`` (int >= 1); ``parent_version``,
    ``training_data_window`` and ``drift_run_id`` are written as given (``None`` when absent),
    other keys are copied through. ``min_agreement`` applies to float32 and dynamic,
    ``min_agreement_int8`` to int8.
    """
    _check_manifest_fields(manifest_fields)
    if size_budget_bytes <= 0:
        raise ValidationError(f"size_budget_bytes must be > 0, got {size_budget_bytes}")
    rep = np.asarray(representative, dtype=np.float32)
    x_verify = np.asarray(x_verify, dtype=np.float32)
    if len(rep) == 0 or len(x_verify) == 0:
        raise ValidationError("representative and x_verify must not be empty")
    for name, arr in (("representative", rep), ("x_verify", x_verify)):
        if arr.shape[1:] != contract.input_shape:
            raise ValidationError(f"{name} has inputs {arr.shape[1:]}, the contract says {contract.input_shape}")
    rep = rep[np.linspace(0, len(rep) - 1, min(representative_samples, len(rep))).astype(int)]
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    model = network.load_model(Path(keras_path))
    from jobs.ml.custom_trainer import check_against_contract

    check_against_contract(model, contract, str(keras_path))
    saved_model_dir = out_dir / "saved_model"
    t0 = time.perf_counter()
    try:
        network.with_embedding(model, contract).export(str(saved_model_dir), format="tf_saved_model", verbose=False)
    except Exception as exc:
        raise ExportError(f"SavedModel export of {keras_path} failed: {exc}") from exc
    saved_model_seconds = time.perf_counter() - t0
    reference = network.predict_inputs(model, x_verify, contract)

    reports = []
    for name, filename in VARIANT_FILES.items():
        t0 = time.perf_counter()
        path = out_dir / filename
        path.write_bytes(convert_variant(saved_model_dir, name, rep))
        convert_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = TFLiteClassifier(path, contract).predict(x_verify)
        verify_seconds = time.perf_counter() - t0
        agreement = float((got.predicted == reference.predicted).mean())
        threshold = min_agreement_int8 if name == "int8" else min_agreement
        size = path.stat().st_size
        reasons = check_variant(agreement, threshold, size, size_budget_bytes)
        reports.append(
            VariantReport(
                name=name,
                path=path,
                quantisation=QUANTISATION[name],
                size_bytes=size,
                size_budget_bytes=size_budget_bytes,
                sha256=sha256_file(path),
                agreement=agreement,
                min_agreement=threshold,
                max_abs_prob_diff=float(np.abs(got.probabilities - reference.probabilities).max()),
                max_abs_embedding_diff=float(np.abs(got.embeddings - reference.embeddings).max()),
                convert_seconds=convert_seconds,
                verify_seconds=verify_seconds,
                passed=not reasons,
                reasons=reasons,
            )
        )

    labels_path = out_dir / "labels.txt"
    labels_path.write_text("".join(f"{label}\n" for label in contract.class_labels))
    manifest_path = out_dir / "manifest.json"
    manifest = _manifest(manifest_fields, contract, labels_path, reports)
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(manifest_path)
    return ExportReport(
        passed=all(r.passed for r in reports),
        out_dir=out_dir,
        saved_model_dir=saved_model_dir,
        labels_path=labels_path,
        manifest_path=manifest_path,
        variants=tuple(reports),
        n_verify=len(x_verify),
        saved_model_seconds=saved_model_seconds,
        seconds=time.perf_counter() - started,
    )


def _manifest(
    fields: dict[str, Any], contract: Contract, labels_path: Path, reports: list[VariantReport]
) -> dict[str, Any]:
    passed = [r for r in reports if r.passed]
    recommended = min(passed, key=lambda r: r.size_bytes).path.name if passed else None
    extra = {
        k: v
        for k, v in fields.items()
        if k not in {"model_name", "version", "parent_version", "training_data_window", "drift_run_id"}
    }
    reading = {
        "softmax": "class probabilities in label order",
        "logits": "logits in label order: apply softmax for probabilities",
        "sigmoid": f"P({contract.class_labels[-1]}); P({contract.class_labels[0]}) = 1 - it",
    }[contract.output]
    return {
        "format": MANIFEST_FORMAT,
        "model_name": fields["model_name"],
        "version": fields["version"],
        "parent_version": fields.get("parent_version"),
        "training_data_window": fields.get("training_data_window"),
        "drift_run_id": fields.get("drift_run_id"),
        "signature": SIGNATURE,
        "input": {
            "name": INPUT_NAME,
            "shape": [1, *contract.input_shape],
            "dtype": "float32",
            "color_mode": contract.color_mode,
            "resize": contract.resize,
            "normalisation": {
                "scale": contract.scale,
                "offset": contract.offset,
                "mean": list(contract.mean) if contract.mean is not None else None,
                "std": list(contract.std) if contract.std is not None else None,
                "formula": contract.to_dict()["formula"],
            },
        },
        "outputs": {
            network.PROBABILITIES: {
                "shape": [1, contract.output_units],
                "dtype": "float32",
                "kind": contract.output,
                "reading": reading,
            },
            network.EMBEDDING: {
                "shape": [1, contract.embedding_dim],
                "dtype": "float32",
                "layer": contract.embedding_layer,
            },
        },
        "contract": contract.to_dict(),
        "labels": list(contract.class_labels),
        "labels_file": {"name": labels_path.name, "sha256": sha256_file(labels_path)},
        "files": {
            r.path.name: {
                "variant": r.name,
                "quantisation": r.quantisation,
                "bytes": r.size_bytes,
                "sha256": r.sha256,
                "verified": r.passed,
                "agreement": r.agreement,
                "max_abs_prob_diff": r.max_abs_prob_diff,
            }
            for r in reports
        },
        "recommended_file": recommended,
        "all_checks_passed": len(passed) == len(reports),
        **({"extra": extra} if extra else {}),
    }
