"""Benchmark: head-only vs full retraining on ~5k 32x32 images, TFLite export + verification, sizes.

Run (2 CPU cores, as on a laptop)::

    .venv/bin/python bench/bench_retrain.py            # table
    .venv/bin/python bench/bench_retrain.py --json     # machine-readable

The champion is trained on the digits' training split; the retraining set is that split
augmented (shifted copies) plus drifted production digits as "newly labelled" samples, about
5,000 images in all. Both modes run the same number of epochs from the same champion.
"""

from __future__ import annotations

import os

for _var, _value in {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "2",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}.items():
    os.environ.setdefault(_var, _value)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.demo.digits import CLASS_LABELS, apply_drift, jitter, load_digits_data  # noqa: E402
from jobs.ml import cnn  # noqa: E402
from jobs.ml.export import export_tflite  # noqa: E402
from jobs.ml.train import NewSamples, evaluate, retrain  # noqa: E402


def _drift(x: np.ndarray, seed: int) -> np.ndarray:
    out = np.empty_like(x)
    for i, kind in enumerate(("darken", "blur", "rotate")):
        out[i::3] = apply_drift(x[i::3], kind, 0.8, seed=seed + i)
    return out


def run(epochs: int, base_copies: int, new_copies: int, workdir: Path) -> dict[str, Any]:
    data = load_digits_data()
    t0 = time.perf_counter()
    champion = cnn.train_baseline(data, seed=0, out_path=workdir / "champion.keras")
    baseline_seconds = time.perf_counter() - t0
    assert champion.path is not None

    # ~5k images: augmented training split + drifted production digits (half held out).
    base_x = np.concatenate([data.x_train] + [jitter(data.x_train, seed=s) for s in range(base_copies - 1)])
    base_y = np.tile(data.y_train, base_copies)
    drifted = _drift(data.x_production, seed=10)
    half = len(drifted) // 2
    held_x, held_y = drifted[half:], data.y_production[half:]
    new_x = np.concatenate([drifted[:half]] + [jitter(drifted[:half], seed=100 + s) for s in range(new_copies - 1)])
    new_y = np.tile(data.y_production[:half], new_copies)
    champ_drift = evaluate(champion.model, held_x, held_y).accuracy

    modes = {}
    for mode in ("head", "full"):
        result = retrain(
            champion.path,
            (base_x, base_y),
            NewSamples(images=new_x, labels=new_y),
            mode=mode,
            epochs=epochs,
            seed=0,
            out_path=workdir / f"{mode}.keras",
        )
        modes[mode] = {
            **result.to_dict(),
            "seconds_per_epoch": result.train_seconds / epochs,
            "drifted_accuracy": evaluate(result.out_path, held_x, held_y).accuracy,
            "test_accuracy": evaluate(result.out_path, data.x_test, data.y_test).accuracy,
        }

    report = export_tflite(
        workdir / "full.keras",
        workdir / "export",
        base_x,
        data.x_test,
        CLASS_LABELS,
        {"model_name": "digits", "version": 2, "parent_version": 1},
        size_budget_bytes=1_000_000,
    )
    sizes = {v.name: v.size_bytes for v in report.variants}
    return {
        "cpu_threads": os.environ.get("TF_NUM_INTRAOP_THREADS"),
        "n_train": modes["head"]["n_train"],
        "epochs": epochs,
        "baseline": {
            "seconds": baseline_seconds,
            "epochs": champion.epochs,
            "n_train": len(data.y_train),
            "test_accuracy": champion.test_accuracy,
            "drifted_accuracy": champ_drift,
        },
        "retrain": modes,
        "export": report.to_dict(),
        "size_ratio_float32_to_int8": sizes["float32"] / sizes["int8"],
        "size_ratio_float32_to_dynamic": sizes["float32"] / sizes["dynamic"],
    }


def _print_table(r: dict[str, Any]) -> None:
    b = r["baseline"]
    print(f"Retraining on {r['n_train']} images of 32x32, {r['epochs']} epochs, "
          f"TF intra-op threads={r['cpu_threads']}")  # fmt: skip
    print(f"baseline: {b['n_train']} images x {b['epochs']} epochs in {b['seconds']:.1f} s, "
          f"test acc {b['test_accuracy']:.3f}, held-out drifted acc {b['drifted_accuracy']:.3f}")  # fmt: skip
    print()
    print(f"{'mode':<6} {'trainable':>10} {'frozen':>8} {'total s':>8} {'s/epoch':>8} "
          f"{'drifted acc':>12} {'test acc':>9}")  # fmt: skip
    for mode, m in r["retrain"].items():
        print(f"{mode:<6} {m['trainable_params']:>10} {m['frozen_params']:>8} {m['train_seconds']:>8.1f} "
              f"{m['seconds_per_epoch']:>8.2f} {m['drifted_accuracy']:>12.3f} {m['test_accuracy']:>9.3f}")  # fmt: skip
    head, full = r["retrain"]["head"], r["retrain"]["full"]
    print(f"head-only is {full['train_seconds'] / head['train_seconds']:.1f}x faster than full")
    e = r["export"]
    print()
    print(f"export (full-mode model): SavedModel {e['saved_model_seconds']:.2f} s, total {e['seconds']:.2f} s, "
          f"verified on {e['n_verify']} test images, passed={e['passed']}")  # fmt: skip
    print(f"{'variant':<8} {'bytes':>9} {'convert s':>10} {'verify s':>9} {'agreement':>10} {'max |dp|':>9}")
    for v in e["variants"]:
        print(f"{v['name']:<8} {v['size_bytes']:>9} {v['convert_seconds']:>10.2f} {v['verify_seconds']:>9.3f} "
              f"{v['agreement']:>10.4f} {v['max_abs_prob_diff']:>9.4f}")  # fmt: skip
    print(f"size ratio float32/int8 = {r['size_ratio_float32_to_int8']:.2f}, "
          f"float32/dynamic = {r['size_ratio_float32_to_dynamic']:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--base-copies", type=int, default=4, help="copies of the training split (988 each)")
    parser.add_argument("--new-copies", type=int, default=6, help="copies of the 179 drifted new samples")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_retrain_") as tmp:
        result = run(args.epochs, args.base_copies, args.new_copies, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print_table(result)


if __name__ == "__main__":
    main()
