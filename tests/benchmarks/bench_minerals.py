"""Mineral identification on the synthetic long-tailed photo set: accuracy figures and speed.

Run with ``make bench`` (or ``.venv/bin/python tests/benchmarks/bench_minerals.py [--quick]``);
prints the tables and writes ``bench_output/minerals.json``.

1. Baseline (plain cross-entropy) vs FEA -> CFL -> cRT, same photos, split,
   backbone and epochs: accuracy, mAcc, tail mAcc, CwASD, CwARange on a
   balanced test folder (20 photos per mineral).
2. The multimodal model on the long-tailed model's frozen backbone: accuracy
   for every subset of available properties x error rates 0 / 30 / 60 %, and
   its parameter overhead (also for the default ResNet-50).
3. Speed on 2 CPU threads (and on the GPU when there is one): training
   images/second, and the latency of identifying one photo with the default
   model (ResNet-50, 224 px) - in-process, and end to end through the command
   line as the QGIS dock runs it.
All runs go through ``geoanomaly minerals`` (``core.cli.main``), so each
leaves its run.json beside the model in ``bench_output/minerals/``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from core.cli import main as geoanomaly  # noqa: E402

OUT = REPO / "bench_output"
WORK = OUT / "minerals"
HEADLINE = ("accuracy", "mAcc", "tail_mAcc", "CwASD", "CwARange")


def _run(argv: list[str]) -> None:
    print("$ geoanomaly " + " ".join(argv), flush=True)
    code = geoanomaly(argv)
    if code != 0:
        raise SystemExit(f"geoanomaly {' '.join(argv[:2])} failed with exit code {code}")


def accuracy_runs(quick: bool, threads: int, reuse: bool = False) -> dict:
    photos = WORK / "photos"
    size = 32
    if not (photos / "properties.csv").is_file():
        _run(["minerals", "synth", "--out", str(photos), "--per-class-max", "300", "--imbalance", "80",
              "--size", str(size), "--test-per-class", "20", "--seed", "0", "--progress", "plain"])
    fea, cfl, crt, mm_epochs = (2, 1, 2, 1) if quick else (12, 8, 10, 8)
    common = ["--data", str(photos), "--backbone", "resnet18", "--image-size", str(size), "--batch-size", "64",
              "--warmup-epochs", "2", "--threads", str(threads), "--progress", "plain", "--restart"]
    commands = {
        "baseline": ["minerals", "train", "--model", "baseline", *common, "--lr", "0.05", "--fea-epochs", str(fea),
                     "--cfl-epochs", str(cfl), "--out", str(WORK / "baseline")],
        "longtail": ["minerals", "train", "--model", "longtail", *common, "--lr", "0.05", "--fea-epochs", str(fea),
                     "--cfl-epochs", str(cfl), "--crt-epochs", str(crt), "--crt-lr", "0.01", "--out", str(WORK / "longtail")],
        "multimodal": ["minerals", "train", "--model", "multimodal", *common, "--photo-model", str(WORK / "longtail"),
                       "--epochs", str(mm_epochs), "--out", str(WORK / "multimodal")],
    }
    results = {}
    for name, argv in commands.items():
        if not (reuse and (WORK / name / "run.json").is_file()):
            _run(argv)
        run = json.loads((WORK / name / "run.json").read_text())
        results[name] = {"metrics": run["metrics"], "seconds": run["timings_s"]["training"],
                         "command": "geoanomaly " + " ".join(argv)}
    return results


def training_throughput(device: torch.device, arch: str, size: int, batch: int, steps: int) -> float:
    """Images/second of FEA training steps (forward + backward + SGD) on random photos."""
    from core.minerals.losses import log_class_prior, logit_adjusted_cross_entropy
    from core.minerals.models import PhotoClassifier

    model = PhotoClassifier(arch, 36).to(device).train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    prior = log_class_prior(range(1, 37)).to(device)
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, 36, (batch,), device=device)

    def step():
        loss = logit_adjusted_cross_entropy(model(images), labels, prior)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def prediction_latency(device: torch.device, photo: Path, kind: str, repeats: int = 10) -> dict:
    """Seconds to identify one photo with a default-sized (ResNet-50, 224 px) model, warm and cold."""
    from core.minerals.models import MultimodalIdentifier, PhotoClassifier, build_resnet
    from core.minerals.properties import MINERALS_36
    from core.minerals.saved import MineralIdentifier, save_model

    folder = WORK / f"default_{kind}"
    classes = sorted(MINERALS_36)
    if kind == "multimodal":
        network = MultimodalIdentifier(build_resnet("resnet50"), 36)
        info = {"multimodal": {"property_features": 36, "hidden": 256, "bottleneck": 64}}
    else:
        network = PhotoClassifier("resnet50", 36)
        info = {"tail_classes": []}
    save_model(folder, network, {"kind": kind, "arch": "resnet50", "classes": classes, "image_size": 224, **info})
    start = time.perf_counter()
    identifier = MineralIdentifier.load(folder, device)
    load_s = time.perf_counter() - start
    props = {"hardness": "3", "luster": "metallic"} if kind == "multimodal" else {}
    identifier.identify(photo, **props)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        identifier.identify(photo, **props)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    result = {"model_load_s": round(load_s, 3), "identify_median_s": round(statistics.median(times), 4),
              "identify_max_s": round(max(times), 4)}
    if device.type == "cpu":
        # End to end as the QGIS dock runs it: a fresh engine process (Python + torch start, model load, one photo).
        argv = [sys.executable, "-m", "core", "minerals", "predict", "--model", str(folder), str(photo), "--json",
                "--threads", str(torch.get_num_threads()), "--device", "cpu", "--progress", "none"]
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, cwd=REPO)
        result["command_line_s"] = round(time.perf_counter() - start, 3)
    return result


def speed(threads: int, quick: bool) -> dict:
    photo = next((WORK / "photos" / "test" / "Quartz").iterdir())
    steps = 2 if quick else 5
    results = {}
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        if device.type == "cpu":
            torch.set_num_threads(threads)
        from core.device import describe_device

        label = describe_device(device)
        results[label] = {
            "train_images_per_s": {
                "resnet50_224px_batch16": round(training_throughput(device, "resnet50", 224, 16 if device.type == "cpu" else 128, steps), 1),
                "resnet18_32px_batch64": round(training_throughput(device, "resnet18", 32, 64, steps * 4), 1),
            },
            "predict_one_photo_resnet50_224px": {kind: prediction_latency(device, photo, kind) for kind in ("longtail", "multimodal")},
        }
    return results


def parameter_overhead_default() -> dict:
    from core.minerals.models import MultimodalIdentifier, build_resnet
    from core.minerals.multimodal import parameter_overhead

    return parameter_overhead(MultimodalIdentifier(build_resnet("resnet50"), 36))


def report(out: dict) -> None:
    acc = out["accuracy_runs"]
    print("\nBaseline (plain CE) vs FEA -> CFL -> cRT, synthetic Minerals-36 stand-in, balanced test folder:")
    print(f"{'model':<12}" + "".join(f"{k:>11}" for k in HEADLINE) + f"{'train s':>10}")
    for name in ("baseline", "longtail"):
        m = acc[name]["metrics"]
        print(f"{name:<12}" + "".join(f"{m[k]:>11.4f}" for k in HEADLINE) + f"{acc[name]['seconds']:>10.0f}")
    print("\nMultimodal accuracy (test photos) by available properties and error rate:")
    rows = acc["multimodal"]["metrics"].get("robustness", [])
    subsets = list(dict.fromkeys(r["properties"] for r in rows))
    print(f"{'properties':<24}{'0 %':>8}{'30 %':>8}{'60 %':>8}")
    for subset in subsets:
        cells = {r["error_rate"]: r["accuracy"] for r in rows if r["properties"] == subset}
        print(f"{subset:<24}" + "".join(f"{cells[e]:>8.3f}" if e in cells else f"{'-':>8}" for e in (0.0, 0.3, 0.6)))
    o = acc["multimodal"]["metrics"]["parameter_overhead"]
    d = out["parameter_overhead_resnet50"]
    print(f"parameter overhead: +{o['overhead_percent']} % over resnet18 ({o['added_parameters']} trainable), "
          f"+{d['overhead_percent']} % over resnet50 ({d['added_parameters']} trainable, SSF {d['ssf_parameters']})")
    print("\nSpeed:")
    for device, s in out["speed"].items():
        print(f"  {device}: training images/s {s['train_images_per_s']}")
        for kind, p in s["predict_one_photo_resnet50_224px"].items():
            print(f"    identify one photo ({kind}, resnet50 224 px): {p}")


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only (checks the script, not the figures)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2, the target machine)")
    parser.add_argument("--skip-training", action="store_true", help="reuse the models already trained in bench_output/minerals (speed only)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    WORK.mkdir(parents=True, exist_ok=True)
    out = {"photo_set": "synthetic, 36 minerals, imbalance 80, 300 photos in the largest class, 32 px; "
                        "balanced test folder of 20 photos per mineral",
           "tail_definition": "rarest minerals holding <= 20 % of the training photos",
           "quick": args.quick, "threads": args.threads}
    out["accuracy_runs"] = accuracy_runs(args.quick, args.threads, reuse=args.skip_training)
    out["parameter_overhead_resnet50"] = parameter_overhead_default()
    out["speed"] = speed(args.threads, args.quick)
    report(out)
    (OUT / "minerals.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwritten to {OUT / 'minerals.json'}")
    return out


if __name__ == "__main__":
    main()
