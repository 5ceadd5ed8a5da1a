"""Benchmark: retraining and re-exporting a team's MobileNetV3Small photo classifier on 2 cores.

Cases (each in a fresh subprocess, so its peak RSS is its own):

- ``retrain``: MobileNetV3Small (weights=None) at 96x96x3 with one sigmoid unit, trained briefly
  as the champion; then a head-only and a full retrain on ``--images`` (5,000) photo patches
  written as PNG class folders and streamed from disk; the three TFLite variants exported and
  verified with ai-edge-litert (time per variant, size, argmax agreement with Keras).
- ``stream``: a head-only retrain of a MobileNetV3Small at 224x224x3 on ``--stream-images``
  (50,000) JPEGs the bench generates on disk, streamed through ``tf.data`` and never held in
  memory at once; time and peak RSS.

Run::

    .venv/bin/python bench/bench_retrain.py                          # both cases, a table
    .venv/bin/python bench/bench_retrain.py --case retrain --images 2000
    .venv/bin/python bench/bench_retrain.py --case stream --stream-images 5000 --json
"""

from __future__ import annotations

import os

for _var, _value in {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}.items():
    os.environ.setdefault(_var, _value)

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LABELS = ("acceptable", "unacceptable")


def _patches(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth colour gradients (acceptable) and dark, noisy ones (unacceptable), uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    y = rng.integers(0, 2, n)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        img = (0.35 + 0.25 * (xx * rng.uniform(0.2, 1) + yy * rng.uniform(0.2, 1)))[..., None] * rng.uniform(0.3, 1, 3)
        if y[i]:
            img = img * rng.uniform(0.2, 0.5) + rng.normal(0, 0.25, img.shape)
        out[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return out, y


def _write_folders(root: Path, n: int, size: int, seed: int, fmt: str, chunk: int = 1000) -> None:
    from PIL import Image

    for start in range(0, n, chunk):
        x, y = _patches(min(chunk, n - start), size, seed + start)
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            split = "test" if (start + i) % 10 == 0 else "train"
            folder = root / split / LABELS[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{start + i:06d}.{fmt}", quality=90)


def _model(size: int) -> Any:
    from jobs.ml.network import keras_module

    keras = keras_module()
    base = keras.applications.MobileNetV3Small(
        input_shape=(size, size, 3), include_top=False, weights=None, pooling="avg", include_preprocessing=True
    )
    for layer in base.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            layer.momentum = 0.9
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Dense(64, activation="relu", name="embedding")(base(inputs))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="score")(x))


def _champion(folder: Path, size: int, seed: int) -> tuple[Path, Any]:
    from jobs.ml import network
    from jobs.ml.contract import ModelContract
    from jobs.ml.preprocess import model_input

    model = _model(size)
    path = folder / "champion.keras"
    contract = network.resolve_contract(model, ModelContract(scale=1.0, offset=0.0), LABELS, source=str(path))
    x, y = _patches(600, size, seed=seed + 10**6)
    network.seed_everything(seed)
    network.compile_model(model, contract, 3e-3)
    model.fit(model_input(x, contract), network.targets(y, contract), epochs=3, batch_size=32, verbose=0)
    network.save_model(model, path)
    return path, contract


def case_retrain(images: int, seed: int) -> dict[str, Any]:
    from jobs.ml.export import export_tflite
    from jobs.ml.train import retrain
    from jobs.retrain.gate import sample_inputs
    from jobs.retrain.training_data import load_training_data

    out: dict[str, Any] = {"case": "retrain", "images": images, "input": "96x96x3"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        _write_folders(folder / "data", images, 96, seed, "png")
        out["write_seconds"] = round(time.perf_counter() - t0, 1)
        champion, contract = _champion(folder, 96, seed)
        data = load_training_data(str(folder / "data"), LABELS)
        new = data.train.take(np.arange(min(500, len(data.train))))
        for mode, epochs in (("head", 5), ("full", 1)):
            t0 = time.perf_counter()
            result = retrain(
                champion,
                contract,
                data.train,
                (new, new.labels),
                mode=mode,
                epochs=epochs,
                out_path=folder / f"{mode}.keras",
            )
            out[f"{mode}_seconds"] = round(time.perf_counter() - t0, 1)
            out[f"{mode}_epochs"] = epochs
            out[f"{mode}_train_images"] = result.n_train
        report = export_tflite(
            folder / "full.keras", folder / "export", sample_inputs(data.train, contract, 200),
            sample_inputs(data.test, contract, 500), contract, {"model_name": "photos", "version": 2}, 8_000_000,
        )  # fmt: skip
        out["export_passed"] = report.passed
        out["saved_model_seconds"] = round(report.saved_model_seconds, 1)
        for v in report.variants:
            out[f"{v.name}_convert_seconds"] = round(v.convert_seconds, 1)
            out[f"{v.name}_bytes"] = v.size_bytes
            out[f"{v.name}_agreement"] = round(v.agreement, 4)
    return out


def prepare_stream(images: int, seed: int, folder: Path) -> dict[str, Any]:
    """The 224x224x3 JPEGs and the champion, in a process of their own (their memory is not the stream's)."""
    t0 = time.perf_counter()
    _write_folders(folder / "data", images, 224, seed, "jpg")
    out = {"write_seconds": round(time.perf_counter() - t0, 1)}
    out["disk_mb"] = round(sum(p.stat().st_size for p in (folder / "data").rglob("*.jpg")) / 1e6, 1)
    _champion(folder, 224, seed)
    return out


def case_stream(images: int, seed: int, folder: Path) -> dict[str, Any]:
    from jobs.ml import network
    from jobs.ml.contract import ModelContract
    from jobs.ml.train import retrain
    from jobs.retrain.training_data import load_training_data

    out: dict[str, Any] = {"case": "stream", "images": images, "input": "224x224x3"}
    champion = folder / "champion.keras"
    contract = network.contract_for_file(champion, ModelContract(scale=1.0, offset=0.0), LABELS)
    data = load_training_data(str(folder / "data"), LABELS)
    t0 = time.perf_counter()
    result = retrain(
        champion, contract, data.train, (data.train.take(np.arange(0)), np.zeros(0, np.int64)), mode="head",
        epochs=2, out_path=folder / "head.keras", batch_size=64,
    )  # fmt: skip
    out["head_seconds"] = round(time.perf_counter() - t0, 1)
    out["images_per_second"] = round(result.n_train / max(out["head_seconds"], 1e-9), 1)
    out["train_images"] = result.n_train
    return out


def _child(case: str, args: argparse.Namespace, workdir: Path | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", case, "--images", str(args.images),
           "--stream-images", str(args.stream_images), "--seed", str(args.seed)]  # fmt: skip
    if workdir is not None:
        cmd += ["--workdir", str(workdir)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{case} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def _run_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    if case == "retrain":
        return _child("retrain", args)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = _child("stream-prepare", args, Path(tmp))
        result = _child("stream", args, Path(tmp))
    return result | {"write_seconds": prepared["write_seconds"], "disk_mb": prepared["disk_mb"],
                     "prepare_peak_rss_mb": prepared["peak_rss_mb"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=("retrain", "stream", "all"), default="all")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--stream-images", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=("retrain", "stream-prepare", "stream"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "retrain":
            result = case_retrain(args.images, args.seed)
        elif args.child == "stream-prepare":
            result = prepare_stream(args.stream_images, args.seed, args.workdir)
        else:
            result = case_stream(args.stream_images, args.seed, args.workdir)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(result))
        return
    cases = ("retrain", "stream") if args.case == "all" else (args.case,)
    results = []
    for case in cases:  # print each case as it ends: the stream case takes a while
        results.append(_run_case(case, args))
        if not args.json:
            _print(results[-1])
    if args.json:
        print(json.dumps(results, indent=2))


def _print(r: dict[str, Any]) -> None:
    print(f"\n{r['case']}: {r['images']:,} images at {r['input']} (peak RSS {r['peak_rss_mb']:,} MB, "
          f"wall {r['wall_seconds']} s)", flush=True)  # fmt: skip
    width = max(len(k) for k in r)
    for key, value in r.items():
        if key not in ("case", "images", "input"):
            print(f"  {key:<{width}}  {value}", flush=True)


if __name__ == "__main__":
    main()
