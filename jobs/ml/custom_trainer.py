"""A team's own trainer: ``COMMAND SPEC.json`` must write a loadable ``.keras`` file.

The spec holds everything the trainer needs (the champion's file, the training data, the new
samples, the class labels and the model contract); the model it writes is checked against the
contract before anything else looks at it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from drift.errors import ContractMismatchError, TrainingError, ValidationError
from jobs.ml import network
from jobs.ml.contract import Contract


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def check_against_contract(model: Any, contract: Contract, source: str) -> None:
    """Raise ContractMismatchError unless ``model`` takes ``contract``'s input and gives its output."""
    in_shape, out_shape = tuple(model.input_shape[1:]), tuple(model.output_shape[1:])
    if in_shape != contract.input_shape:
        raise ContractMismatchError("contract.input", source, contract.input_shape, in_shape)
    if out_shape[-1:] != (contract.output_units,):
        raise ContractMismatchError(
            "contract.output", source, f"{contract.output_units} units ({contract.output})", out_shape
        )
    names = {layer.name for layer in model.layers}
    if contract.embedding_layer not in names:
        raise ContractMismatchError("contract.embedding_layer", source, contract.embedding_layer, "no such layer")


def run_custom_trainer(
    command: list[str], spec: dict[str, Any], workdir: Path, contract: Contract, *, timeout_s: float = 3600.0
) -> Path:
    """Run ``command + [spec_path]`` in ``workdir``; returns the model file it wrote.

    The spec is written to ``workdir/trainer_spec.json`` with the contract added; if it has no
    ``output_path`` one is added (``workdir/model.keras``). Raises TrainingError, with the tail
    of the command's stderr, if it cannot start, times out, exits non-zero, or leaves no
    loadable model; ContractMismatchError if the model breaks the contract.
    """
    if not command:
        raise ValidationError("custom trainer command is empty")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    spec = dict(spec) | {"contract": contract.to_dict()}
    spec.setdefault("output_path", str(workdir / "model.keras"))
    output = Path(spec["output_path"])
    if output.suffix != ".keras":
        raise ValidationError(f"custom trainer output_path must end in .keras, got {output.name}")
    spec_path = workdir / "trainer_spec.json"
    spec_path.write_text(json.dumps(spec, indent=2, default=str))
    name = command[0]
    try:
        proc = subprocess.run(
            [*command, str(spec_path)], cwd=workdir, capture_output=True, text=True, timeout=timeout_s
        )
    except FileNotFoundError as exc:
        raise TrainingError(f"custom trainer {name!r} cannot be started: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise TrainingError(
            f"custom trainer {name!r} timed out after {timeout_s:g} s; stderr tail:\n{_tail(stderr)}"
        ) from exc
    if proc.returncode != 0:
        raise TrainingError(
            f"custom trainer {name!r} exited with status {proc.returncode}; stderr tail:\n{_tail(proc.stderr)}"
        )
    if not output.is_file():
        raise TrainingError(
            f"custom trainer {name!r} exited 0 but wrote no model at {output}; stderr tail:\n{_tail(proc.stderr)}"
        )
    check_against_contract(network.load_model(output), contract, f"custom trainer {name!r} output {output}")
    return output
