"""A model trained elsewhere comes in whole: checked, copied, registered, optionally exported.

:func:`register_trained_model` is what ``driftkeeper models register --artifact model.keras``
runs. It checks everything a retrain would need and says what is missing:

- the model file loads, and its input and output agree with the configured contract
  (:func:`jobs.ml.contract.resolve_contract`: a mismatch names the key, the file and both values);
- the training data is configured, reachable and lists images of the model's classes;
- ``image_roots`` lets a retrain read production images.

Unless ``dry_run``, the file is copied to ``models_dir/<model>/v<N>/model.keras`` (the team's
file may move; the copy is what the next retrain starts from) and registered as version N, the
champion by default, with the resolved contract in its lineage. With ``export_dir`` the version
is exported to TFLite there and every variant verified on the training data's test set, the
contract in its ``manifest.json``; a failing export registers nothing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from drift.errors import ContractMismatchError, DriftkeeperError, ValidationError
from jobs.config import Settings
from jobs.retrain import training_data
from jobs.retrain.data import storage_options
from jobs.retrain.gate import VERIFY_AT_MOST, export_record, sample_inputs, version_dir
from storage import repository


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "required": self.required}


@dataclass(frozen=True, kw_only=True)
class Onboarding:
    """What registering a model file found, and what it did (nothing on a dry run or a failed check)."""

    model: str
    version: int
    artifact: str
    dry_run: bool
    checks: tuple[Check, ...]
    registered: bool = False
    artifact_path: str | None = None
    contract: dict[str, Any] | None = None
    export: dict[str, Any] = field(default_factory=dict)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(f"{c.name}: {c.detail}" for c in self.checks if c.required and not c.ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "artifact": self.artifact,
            "dry_run": self.dry_run,
            "ready": not self.missing,
            "missing": list(self.missing),
            "checks": [c.to_dict() for c in self.checks],
            "registered": self.registered,
            "artifact_path": self.artifact_path,
            "contract": self.contract,
            "export": self.export,
        }


def register_trained_model(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model_name: str,
    artifact: Path,
    *,
    version: int | None = None,
    export_dir: Path | None = None,
    dry_run: bool = False,
    status: str = "champion",
) -> Onboarding:
    """Check, and unless ``dry_run`` or a required check failed, copy, register (and export); see the module."""
    from jobs.ml.network import contract_for_file, load_model

    model = settings.model(model_name)
    checks: list[Check] = []
    with session_factory() as session:
        names = {m.name: m for m in repository.list_models(session)}
        row = names.get(model.name)
        taken = repository.known_versions(session, row.id) if row is not None else set()
    number = version if version is not None else max(taken, default=0) + 1
    if number in taken:
        checks.append(Check(name="version", ok=False, detail=f"{model.name} already has a version {number}"))
    contract = None
    try:
        load_model(artifact)
        checks.append(Check(name="model file", ok=True, detail=f"{artifact} loads"))
        contract = contract_for_file(artifact, model.contract, model.class_labels, task=model.task)
        checks.append(Check(name="contract", ok=True, detail=_describe(contract.to_dict())))
    except ContractMismatchError as exc:
        checks.append(Check(name="contract", ok=False, detail=str(exc)))
    except DriftkeeperError as exc:
        checks.append(Check(name="model file", ok=False, detail=str(exc)))
    options = storage_options(settings)
    data = None
    location = model.retrain.training_data
    if location is None:
        checks.append(Check(name="training data", ok=False, detail="retrain.training_data is not configured"))
    elif not training_data.exists(location, options):
        checks.append(Check(name="training data", ok=False, detail=f"{location} does not exist"))
    else:
        try:
            data = training_data.load_training_data(
                location, model.class_labels, test_share=model.retrain.test_share, storage_options=options
            )
            detail = f"{data.kind}: {len(data.train)} training and {len(data.test)} test images"
            ok = len(data.train) > 0 and len(data.test) > 0
            if data.skipped:
                detail += f"; left out: {data.skipped}"
            checks.append(Check(name="training data", ok=ok, detail=detail if ok else detail + " (need both)"))
        except DriftkeeperError as exc:
            checks.append(Check(name="training data", ok=False, detail=str(exc)))
    roots = ", ".join(model.image_roots) or "none: a retrain cannot read production images"
    checks.append(Check(name="image_roots", ok=bool(model.image_roots), detail=roots, required=False))
    report = Onboarding(
        model=model.name,
        version=number,
        artifact=str(artifact),
        dry_run=dry_run,
        checks=tuple(checks),
        contract=contract.to_dict() if contract is not None else None,
    )
    if dry_run or report.missing:
        return report
    assert contract is not None and data is not None
    target = version_dir(settings, model, number) / "model.keras"
    target.parent.mkdir(parents=True, exist_ok=True)
    if Path(artifact).resolve() != target.resolve():
        tmp = target.with_suffix(".keras.tmp")
        shutil.copyfile(artifact, tmp)
        tmp.replace(target)
    export: dict[str, Any] = {}
    if export_dir is not None:
        export = _export(target, Path(export_dir), contract, data, model.name, number, model.retrain)
        if not export["passed"]:
            raise ValidationError(f"the export of {artifact} failed its checks: {'; '.join(export['reasons'])}")
    with session_factory.begin() as session:
        model_row = repository.ensure_model(session, model.name, model.task)
        registered = repository.register_version(
            session,
            model_row,
            number,
            artifact_path=str(target),
            status=status,
            metrics={},
            lineage={"source": "registered", "artifact": str(artifact), "contract": contract.to_dict()},
        )
        if export:
            registered.export_dir = export["out_dir"]
    return Onboarding(
        model=model.name,
        version=number,
        artifact=str(artifact),
        dry_run=False,
        checks=tuple(checks),
        registered=True,
        artifact_path=str(target),
        contract=contract.to_dict(),
        export=export,
    )


def _describe(contract: dict[str, Any]) -> str:
    h, w, c = contract["height"], contract["width"], contract["channels"]
    return (
        f"{h}x{w}x{c} {contract['color_mode']}, {contract['output']} over {len(contract['class_labels'])} classes,"
        f" embedding {contract['embedding_layer']} ({contract['embedding_dim']}),"
        f" head from {contract['head_starts_at']}"
    )


def _export(
    keras_path: Path, out_dir: Path, contract: Any, data: training_data.TrainingData, name: str, version: int,
    policy: Any,
) -> dict[str, Any]:  # fmt: skip
    from jobs.ml.export import export_tflite

    report = export_tflite(
        keras_path,
        out_dir,
        sample_inputs(data.train, contract, 300),
        sample_inputs(data.test, contract, VERIFY_AT_MOST),
        contract,
        {"model_name": name, "version": version, "parent_version": None, "source": "registered"},
        policy.size_budget_bytes,
        min_agreement=policy.min_export_agreement,
        min_agreement_int8=policy.min_int8_agreement,
    )
    return export_record(report)
