"""``geoanomaly minerals``: identify minerals from specimen photos (train / predict / serve / evaluate / synth).

Examples::

    geoanomaly minerals synth --out photos --per-class-max 200
    geoanomaly minerals train --data photos --out models/quick          # pretrained, minutes on a laptop
    geoanomaly minerals train --data photos --schedule full --out models/longtail
    geoanomaly minerals train --data photos --model multimodal --photo-model models/longtail --out models/mm
    geoanomaly minerals predict --model models/mm specimen.jpg --hardness 3.5 --luster metallic --json
    echo '{"model": "models/mm", "photo": "specimen.jpg", "hardness": "3.5"}' | geoanomaly minerals serve
    geoanomaly minerals evaluate --model models/baseline --model models/longtail --data photos --out eval
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import shutil
import sys
import time
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from core.commands._options import (
    add_batch_size_argument,
    add_device_argument,
    add_output_argument,
    add_seed_argument,
    add_threads_argument,
)
from core.device import cpu_threads
from core.errors import GeoAnomalyError, InvalidInputError
from core.io.atomic import atomic_output_dir
from core.minerals import BACKBONES, DEFAULT_BACKBONE
from core.progress import Progress
from core.runrecord import RunRecord

if TYPE_CHECKING:  # torch is imported only when a command runs
    from core.minerals.saved import MineralIdentifier

NAME = "minerals"
HELP = "identify minerals from specimen photos: train, predict, serve, evaluate (long-tailed and multimodal models)"
HEADLINE = ("accuracy", "mAcc", "tail_mAcc", "CwASD", "CwARange")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="minerals_action", metavar="ACTION", required=True)

    train = actions.add_parser("train", help="train a model on a folder of photos (one sub-folder per mineral)")
    _common(train)
    train.add_argument("--data", required=True, help="photo folder: one sub-folder per mineral (or train/val/test/ each so)")
    train.add_argument("--model", choices=["longtail", "baseline", "multimodal"], default="longtail",
                       help="longtail: FEA -> CFL -> cRT; baseline: plain cross-entropy (for comparison); "
                            "multimodal: photo + hardness/luster/streak on a frozen backbone (default: longtail)")
    add_output_argument(train, help="output model folder")
    train.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=BACKBONES,
                       help=f"feature extractor (default {DEFAULT_BACKBONE}: ImageNet weights installed with the engine; "
                            f"the ResNets train from scratch unless --weights is given)")
    train.add_argument("--weights", help="ResNets: ImageNet weights file (.pth state dict); default: train from scratch")
    train.add_argument("--schedule", choices=["quick", "full"], default="quick",
                       help="quick: the pretrained backbone stays frozen, its features are cached and only the "
                            "classifier stages run (minutes on a CPU); full: seed 002's published fine-tuning "
                            "schedule FEA -> CFL -> cRT (hours on a CPU; a GPU recommended). Default quick")
    train.add_argument("--views", type=int, default=4, help="quick: feature vectors cached per training photo (the "
                                                            "centre crop + random crops/flips; default 4)")
    train.add_argument("--min-stage-steps", type=int, default=200,
                       help="full: each fine-tuning stage runs at least this many optimiser steps (default 200)")
    train.add_argument("--crt-solver", choices=["converged", "sgd"], default="converged",
                       help="full: cRT minimised to convergence (default) or the published fixed SGD epochs")
    train.add_argument("--keep-every-stage", action="store_true",
                       help="full: keep a stage even when it lowers the validation mAcc (as published; for comparisons)")
    train.add_argument("--photo-model", help="multimodal: a trained longtail/baseline model folder whose feature extractor "
                                            "is frozen under the multimodal model (recommended)")
    train.add_argument("--properties", help="CSV of per-specimen properties (file, hardness, luster, streak); "
                                           "default DATA/properties.csv when present")
    train.add_argument("--image-size", type=int, default=224, help="crop in pixels (default 224)")
    add_batch_size_argument(train, None, help="photos per step (default 128 full schedule, 64 multimodal; quick: "
                                                "photos per feature pass, default 8)")
    train.add_argument("--fea-epochs", type=int, default=60, help="FEA epochs (default 60; baseline trains FEA+CFL epochs)")
    train.add_argument("--cfl-epochs", type=int, default=40, help="CFL epochs (default 40)")
    train.add_argument("--crt-epochs", type=int, default=10, help="cRT epochs (default 10)")
    train.add_argument("--warmup-epochs", type=int, default=10, help="one-cycle warm-up epochs (default 10)")
    train.add_argument("--epochs", type=int, default=30, help="multimodal epochs (default 30)")
    train.add_argument("--lr", type=float, help="peak learning rate (default: 0.002 with --weights, 0.05 from scratch; "
                                                 "multimodal 0.0001 with AdamW)")
    train.add_argument("--crt-lr", type=float, default=1e-3, help="cRT learning rate (default 0.001)")
    train.add_argument("--error-rate", type=float, default=0.3,
                       help="multimodal: share of recorded hardness/luster/streak values the model assumes wrong "
                            "(default 0.3); the higher, the less a property can overrule the photo")
    _split_options(train)
    train.add_argument("--restart", action="store_true", help="ignore checkpoints of an interrupted run and start again")

    predict = actions.add_parser("predict", help="identify the mineral in one or more photos (top 5 with probabilities)")
    _common(predict)
    predict.add_argument("--model", required=True, help="trained model folder")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="photo(s) of a specimen (JPEG/PNG/WebP)")
    predict.add_argument("--hardness", help="Mohs hardness (e.g. 3.5) or soft/medium/hard; leave out if not measured")
    predict.add_argument("--luster", help="metallic or non-metallic; leave out if not observed")
    predict.add_argument("--streak", help="white/colourless or coloured/dark; leave out if not observed")
    predict.add_argument("--top", type=int, default=5, help="how many minerals to list (default 5)")
    predict.add_argument("--json", action="store_true", help="print the result as JSON on stdout")

    serve = actions.add_parser(
        "serve", help="identify photos on request: one JSON request per line on stdin, one JSON answer per line on "
                      "stdout, models kept loaded (the QGIS plugin's Identify)")
    _common(serve)

    evaluate = actions.add_parser("evaluate", help="class-wise accuracy of trained models on a photo folder's test photos")
    _common(evaluate)
    evaluate.add_argument("--model", required=True, action="append", help="model folder (repeat to compare models)")
    evaluate.add_argument("--data", required=True, help="photo folder (split again as at training, same seed)")
    evaluate.add_argument("--properties", help="CSV of per-specimen properties (default DATA/properties.csv)")
    evaluate.add_argument("--split", choices=["test", "val", "train"], default="test", help="which photos (default test)")
    add_output_argument(evaluate, required=False,
                        help="folder for metrics.json, per-class accuracy, confusion matrices, run.json")

    synth = actions.add_parser("synth", help="write the synthetic long-tailed photo set (36 minerals) for trials")
    _common(synth)
    add_output_argument(synth, help="output photo folder")
    synth.add_argument("--per-class-max", type=int, default=200, help="photos of the largest class (default 200)")
    synth.add_argument("--imbalance", type=float, default=80.0, help="largest / smallest class (default 80)")
    synth.add_argument("--size", type=int, default=64, help="photo size in pixels (default 64)")
    synth.add_argument("--test-per-class", type=int, default=0,
                       help="write train/ (long-tailed), val/ and a balanced test/ with this many photos per mineral "
                            "(default 0: one folder per mineral, split at training)")
    add_seed_argument(synth, help="random seed of the photos (default 0)")


def _common(parser: argparse.ArgumentParser) -> None:
    # Repeated here so they also work after the action (``minerals train ... --progress json``);
    # SUPPRESS keeps a value given before the action.
    parser.add_argument("--progress", choices=["auto", "bar", "plain", "json", "none"], default=argparse.SUPPRESS,
                        help="progress display (json: one object per line, for the QGIS plugin)")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="full traceback of internal errors")
    add_device_argument(parser)
    add_threads_argument(parser, None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--workers", type=int, default=0, help="photo-loading worker processes (default 0)")


def _split_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of each mineral's photos for validation")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share of each mineral's photos for testing")
    add_seed_argument(parser, help="seed of the split and the training (default 0)")


def run(args: argparse.Namespace, progress: Progress) -> int:
    progress = Progress(mode=getattr(args, "progress", "auto"))  # may have been given after the action

    actions = {"train": _train, "predict": _predict, "serve": _serve, "evaluate": _evaluate, "synth": _synth}
    with cpu_threads(threads=args.threads):
        return actions[args.minerals_action](args, progress)


# -- synth ----------------------------------------------------------------------------------------------


def _synth(args, progress: Progress) -> int:
    from core.minerals.synthetic import write_synthetic_photo_set

    if args.per_class_max < 1 or args.imbalance < 1 or args.size < 16 or args.test_per_class < 0:
        raise InvalidInputError("--per-class-max and --imbalance must be >= 1, --size >= 16, --test-per-class >= 0")
    progress.stage("synth", f"Writing synthetic photos to {args.out}")
    with atomic_output_dir(args.out) as staging:
        counts = write_synthetic_photo_set(staging, args.per_class_max, args.imbalance, args.size, args.seed,
                                           test_per_class=args.test_per_class)
    progress.log(f"{sum(counts.values())} photos of {len(counts)} minerals written to {args.out}")
    progress.result(outputs={"photos": str(args.out)}, counts=counts)
    return 0


# -- train ----------------------------------------------------------------------------------------------


def _check_positive(args, names: list[str]) -> None:
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 0:
            raise InvalidInputError(f"--{name.replace('_', '-')} must not be negative, got {value}")


def _train(args, progress: Progress) -> int:
    from core.device import describe_device, resolve_device
    from core.minerals.datasets import check_training_collection, collection_fingerprint, scan_photo_folder

    _check_positive(args, ["fea_epochs", "cfl_epochs", "crt_epochs", "epochs", "lr", "batch_size", "image_size",
                           "min_stage_steps"])
    if args.views < 1:
        raise InvalidInputError(f"--views must be at least 1, got {args.views}")
    if args.weights and args.backbone == DEFAULT_BACKBONE:
        raise InvalidInputError(f"--weights is for the ResNets; {DEFAULT_BACKBONE} comes with its ImageNet weights")
    if args.image_size < 16:
        raise InvalidInputError(f"--image-size {args.image_size} is too small (at least 16 pixels)")
    if not 0 <= args.error_rate < 1:
        raise InvalidInputError(f"--error-rate must be at least 0 and below 1, got {args.error_rate}")
    if args.model != "multimodal" and args.photo_model:
        raise InvalidInputError("--photo-model is only for --model multimodal")
    device = resolve_device(args.device)
    record = RunRecord("minerals train", vars(args))
    record["device"] = describe_device(device)
    progress.log(f"Using device {record['device']}")

    progress.stage("scan", f"Reading photos in {args.data}")
    collection = scan_photo_folder(args.data, args.val_fraction, args.test_fraction, args.seed, args.properties)
    check_training_collection(collection)
    _report_collection(collection, progress, record)
    out = Path(args.out).expanduser().resolve()
    checkpoints = out.parent / f".{out.name}.stages"
    if args.restart:
        shutil.rmtree(checkpoints, ignore_errors=True)

    with atomic_output_dir(out) as staging:
        record.start_timer("training")
        if args.model == "multimodal":
            network, info, metrics = _train_multimodal(args, collection, device, progress, record)
        else:
            network, info, metrics = _train_longtail(args, collection, device, progress, record, checkpoints, staging)
        record.stop_timer("training")
        info.update(classes=collection.classes, image_size=args.image_size,
                    class_counts=collection.class_counts("train").tolist(), data_fingerprint=collection_fingerprint(collection),
                    split={"seed": args.seed, "val_fraction": args.val_fraction, "test_fraction": args.test_fraction})
        from core.minerals.saved import save_model

        save_model(staging, network.cpu(), info)
        record["metrics"] = metrics
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        record.write(staging / "run.json")
    shutil.rmtree(checkpoints, ignore_errors=True)
    progress.log(f"model written to {out}")
    progress.result(outputs={"model": str(out)}, metrics=_headline(metrics))
    return 0


def _report_collection(collection, progress: Progress, record: RunRecord) -> None:
    counts = collection.class_counts("train")
    for name in collection.unreadable[:20]:
        progress.warn(f"skipped unreadable photo {name}")
    if len(collection.unreadable) > 20:
        progress.warn(f"... and {len(collection.unreadable) - 20} more unreadable photos")
    empty = [collection.classes[c] for c in range(len(counts)) if counts[c] == 0]
    if empty:
        raise InvalidInputError(f"no training photos for {', '.join(empty)}: each mineral needs at least 3 photos")
    present = counts[counts > 0]
    progress.log(f"{len(collection.files)} photos of {len(collection.classes)} minerals; training photos per mineral "
                 f"{present.min()}-{present.max()} (imbalance {present.max() / present.min():.1f})")
    record["data"] = {"photos": len(collection.files), "unreadable": collection.unreadable, "minerals": collection.classes,
                      "train_counts": counts.tolist(), "test_photos": int(len(collection.indices("test")))}


def _train_longtail(args, collection, device, progress, record, checkpoints: Path, staging: Path):
    if args.schedule == "quick":
        from core.minerals.quick import QuickConfig, QuickTrainer

        config = QuickConfig(method=args.model, arch=args.backbone, weights=args.weights, image_size=args.image_size,
                             views=args.views, batch_size=args.batch_size or QuickConfig.batch_size, seed=args.seed,
                             num_workers=args.workers)
        record["config"] = {"schedule": "quick", **asdict(config)}
        trainer = QuickTrainer(config, device, progress)
    else:
        from core.minerals.longtail import LongTailConfig, LongTailTrainer

        config = LongTailConfig(
            method=args.model, arch=args.backbone, weights=args.weights, image_size=args.image_size,
            batch_size=args.batch_size or 128, fea_epochs=args.fea_epochs, cfl_epochs=args.cfl_epochs,
            crt_epochs=args.crt_epochs, lr=args.lr, warmup_epochs=args.warmup_epochs, crt_lr=args.crt_lr,
            crt_solver=args.crt_solver, min_stage_steps=args.min_stage_steps, guard=not args.keep_every_stage,
            seed=args.seed, num_workers=args.workers,
        )
        record["config"] = {"schedule": "full", **asdict(config), "peak_lr": config.peak_lr()}
        trainer = LongTailTrainer(config, device, checkpoints, progress)
    network = trainer.fit(collection)
    record["training"] = trainer.history_
    backbone = {"arch": args.backbone, "weights": trainer.backbone_origin_}
    validation = {"mAcc": None if trainer.val_mAcc_ is None else round(trainer.val_mAcc_, 4),
                  "n_photos": int(len(collection.indices("val"))), "stages": trainer.stages_,
                  "kept_stage": trainer.kept_stage_}
    record["backbone"], record["validation"] = backbone, validation
    metrics = _evaluate_photo_model(network, collection, "test", args.image_size, trainer.tail_classes_, device,
                                    staging, progress, args.model)
    info = {"kind": args.model, "arch": args.backbone, "backbone": backbone, "validation": validation,
            "tail_classes": trainer.tail_classes_, "config": record["config"]}
    return network, info, metrics


def _train_multimodal(args, collection, device, progress, record):
    from core.minerals.backbones import build_backbone
    from core.minerals.multimodal import (
        MultimodalConfig,
        MultimodalTrainer,
        parameter_overhead,
        robustness_table,
    )
    from core.minerals.saved import load_photo_backbone

    if args.photo_model:
        backbone, arch = load_photo_backbone(args.photo_model)
        progress.log(f"frozen feature extractor: {arch} from {args.photo_model}")
    else:
        arch = args.backbone
        backbone = build_backbone(arch, args.weights)
        if arch != DEFAULT_BACKBONE and not args.weights:
            progress.warn("no --photo-model or --weights: the frozen backbone is random, so the photo branch will be weak")
    config = MultimodalConfig(arch=arch, image_size=args.image_size, batch_size=args.batch_size or 64,
                              epochs=args.epochs, lr=args.lr or MultimodalConfig.lr, error_rate=args.error_rate,
                              seed=args.seed, num_workers=args.workers)
    record["config"] = asdict(config)
    trainer = MultimodalTrainer(config, device, progress)
    network = trainer.fit(collection, backbone)
    record["training"] = trainer.history_
    with_properties = trainer.val_mAcc_properties_
    validation = {"mAcc": None if with_properties is None else round(with_properties, 4),
                  "photo_only_mAcc": None if trainer.val_mAcc_ is None else round(trainer.val_mAcc_, 4),
                  "n_photos": int(len(collection.indices("val"))), "kept_epoch": trainer.kept_epoch_,
                  "properties": "as recorded"}
    record["validation"] = validation
    overhead = parameter_overhead(network)
    progress.log(f"trainable parameters: {overhead['added_parameters']} "
                 f"(+{overhead['overhead_percent']} % over the {overhead['backbone_parameters']}-parameter backbone)")
    metrics = {"parameter_overhead": overhead}
    if len(collection.indices("test")):
        progress.stage("evaluate", "Accuracy over property subsets and error rates", weight=0.0)
        metrics["robustness"] = robustness_table(network, collection, "test", args.image_size, device)
        _log_robustness(metrics["robustness"], progress)
    record["backbone"] = {"arch": arch, "weights": backbone.origin}
    info = {"kind": "multimodal", "arch": arch, "backbone": record["backbone"], "validation": validation,
            "config": record["config"], "multimodal": {"fusion": "photo expert x property likelihood tables",
                                                       "error_rate": config.error_rate}}
    return network, info, metrics


def _log_robustness(rows: list[dict], progress: Progress) -> None:
    for row in rows:
        progress.log(f"  {row['properties']:<24} error {row['error_rate']:.0%}: accuracy {row['accuracy']:.3f} "
                     f"mAcc {row['mAcc']:.3f}")


def _evaluate_photo_model(network, collection, split, image_size, tail, device, folder: Path | None, progress,
                          label: str) -> dict:
    from core.minerals.longtail import evaluate_classifier
    from core.minerals.metrics import plot_confusion_matrix

    if not len(collection.indices(split)):
        progress.warn(f"no {split} photos: no accuracy figures")
        return {}
    m = evaluate_classifier(network, collection, split, image_size, tail, device)
    progress.log(f"{label}: " + ", ".join(f"{k} {m[k]:.3f}" for k in HEADLINE))
    per_class = {name: (None if math.isnan(a) else round(float(a), 4))
                 for name, a in zip(collection.classes, m["per_class_accuracy"])}
    support = m["confusion"].sum(axis=1)
    for c, name in enumerate(collection.classes):
        if support[c]:
            progress.log(f"  {name:<15} {per_class[name]:6.1%} of {support[c]} {split} photos")
    metrics = {k: round(float(m[k]), 4) for k in HEADLINE}
    metrics.update(split=split, n_photos=m["n_test"], tail_definition="rarest minerals holding <= 20 % of training photos",
                   tail_minerals=[collection.classes[c] for c in tail], per_class_accuracy=per_class)
    if folder is not None:
        plot_confusion_matrix(m["confusion"], collection.classes, folder / "confusion_matrix.png",
                              f"{label}: {split} photos, mAcc {m['mAcc']:.3f}")
        counts = collection.class_counts("train")
        with open(folder / "per_class_accuracy.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["mineral", "train_photos", f"{split}_photos", "accuracy", "tail"])
            support = m["confusion"].sum(axis=1)
            for c, name in enumerate(collection.classes):
                writer.writerow([name, int(counts[c]), int(support[c]), per_class[name], c in tail])
    return metrics


def _headline(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k in HEADLINE or k in ("parameter_overhead", "robustness")}


# -- predict --------------------------------------------------------------------------------------------


def _predict(args, progress: Progress) -> int:
    from core.device import resolve_device

    identifier = _load_identifier(args.model, resolve_device(args.device))
    _warn_unused_properties(identifier, (args.hardness, args.luster, args.streak), progress)
    results = [_identify_photo(identifier, image, args.hardness, args.luster, args.streak, args.top)
               for image in args.images]
    if args.json and progress.mode != "json":
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
    elif progress.mode != "json":
        for result in results:
            print(result["image"] + ("  - uncertain: no mineral reaches 50 %, check the candidates"
                                     if result["uncertain"] else ""))
            for rank, row in enumerate(result["top"], start=1):
                bar = "#" * int(round(row["probability"] * 30))
                print(f"  {rank}. {row['mineral']:<15} {row['probability']:6.1%} {bar}")
        sys.stdout.flush()
    progress.result(predictions=results, model=str(args.model))
    return 0


def _load_identifier(folder: str | Path, device) -> MineralIdentifier:
    """A trained model ready to identify photos (``predict`` loads one per run, ``serve`` keeps them)."""
    from core.minerals.saved import MineralIdentifier

    return MineralIdentifier.load(folder, device)


def _warn_unused_properties(identifier: MineralIdentifier, properties: tuple, progress: Progress) -> None:
    if not identifier.uses_properties and any(v not in (None, "") for v in properties):
        progress.warn("this model uses the photo only; hardness/luster/streak are ignored (train --model multimodal)")


def _identify_photo(identifier: MineralIdentifier, image: str | Path, hardness, luster, streak, top: int) -> dict:
    """One photo's answer, the same for ``predict`` and ``serve``: image, top minerals, seconds taken."""
    if not Path(image).is_file():
        raise InvalidInputError(f"photo {image} does not exist")
    from core.minerals.saved import UNCERTAIN_BELOW, is_uncertain

    start = time.perf_counter()
    rows = identifier.identify(image, hardness, luster, streak, top=top)
    return {"image": str(image), "top": rows, "uncertain": is_uncertain(rows), "uncertain_below": UNCERTAIN_BELOW,
            "seconds": round(time.perf_counter() - start, 4)}


# -- serve ----------------------------------------------------------------------------------------------

REQUEST_FIELDS = ("model", "photo", "top", "hardness", "luster", "streak", "device")
PROPERTY_FIELDS = ("hardness", "luster", "streak")


def _serve(args, progress: Progress) -> int:
    """Answer one JSON request per stdin line with one JSON line on stdout, until stdin ends.

    Starting Python, importing torch and loading a model take seconds, a prediction a fraction of
    one: the plugin keeps this process running and sends it every Identify. A bad request gets
    ``{"error": ...}`` and the next one is served as usual.
    """
    answers = sys.stdout
    log = Progress(mode=progress.mode, stream=sys.stderr)  # stdout carries answers only
    models = _IdentifierCache()
    # A stray print (ours or a library's) must not break the one-line-per-request protocol.
    with contextlib.redirect_stdout(sys.stderr):
        for line in iter(sys.stdin.readline, ""):
            if not line.strip():
                continue
            try:
                answer = _answer(_parse_request(line), models, args.device, log)
            except GeoAnomalyError as exc:
                answer = {"error": str(exc)}
            except Exception as exc:  # noqa: BLE001 - one failed request must not end the server
                answer = {"error": f"internal error: {type(exc).__name__}: {exc}"}
            answers.write(json.dumps(answer) + "\n")
            answers.flush()
    return 0


def _parse_request(line: str) -> dict:
    try:
        request = json.loads(line)
    except ValueError as exc:
        raise InvalidInputError(f"a request must be one JSON object per line: {exc}") from None
    if not isinstance(request, dict):
        raise InvalidInputError("a request must be one JSON object per line, e.g. {\"model\": ..., \"photo\": ...}")
    unknown = sorted(set(request) - set(REQUEST_FIELDS))
    if unknown:
        raise InvalidInputError(f"unknown request field {', '.join(map(repr, unknown))}; "
                                f"the fields are {', '.join(REQUEST_FIELDS)}")
    for name, what in (("model", "the trained model folder"), ("photo", "the photo to identify")):
        if not isinstance(request.get(name), str) or not request[name].strip():
            raise InvalidInputError(f"the request field {name!r} must name {what}")
    top = request.get("top", 5)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise InvalidInputError(f"the request field 'top' must be a whole number >= 1, got {top!r}")
    for name in PROPERTY_FIELDS:
        value = request.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
            raise InvalidInputError(f"the request field {name!r} must be text or a number, got {value!r}")
    if not isinstance(request.get("device", ""), (str, type(None))):
        raise InvalidInputError(f"the request field 'device' must be auto, cpu, cuda or cuda:N, got {request['device']!r}")
    return request


def _answer(request: dict, models: _IdentifierCache, default_device: str, log: Progress) -> dict:
    identifier = models.get(request["model"], request.get("device") or default_device)
    properties = tuple(request.get(name) for name in PROPERTY_FIELDS)
    answer = _identify_photo(identifier, request["photo"], *properties, request.get("top", 5))
    _warn_unused_properties(identifier, properties, log)  # after: a request that failed has said why
    return answer


class _IdentifierCache:
    """Loaded models by (folder, device); a model whose files changed (retrained) is loaded again."""

    def __init__(self, size: int = 3) -> None:
        # A few at most: a ResNet-50 model holds ~100 MB, and the plugin uses one model at a time.
        self.size = size
        self.entries: OrderedDict[tuple[str, str], tuple[tuple, MineralIdentifier]] = OrderedDict()

    def get(self, folder: str, device_name: str) -> MineralIdentifier:
        from core.device import resolve_device

        device = resolve_device(device_name)
        path = Path(folder).expanduser().resolve()
        key = (str(path), str(device))
        stamp = _model_stamp(path)
        entry = self.entries.pop(key, None)
        if entry is None or entry[0] != stamp:
            entry = (stamp, _load_identifier(path, device))
        self.entries[key] = entry  # most recently used last
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return entry[1]


def _model_stamp(folder: Path) -> tuple:
    """Modification times of a model folder's files (None where missing: loading then says what is wrong)."""
    from core.minerals.saved import MODEL_FILE, WEIGHTS_FILE

    stamp = []
    for name in (MODEL_FILE, WEIGHTS_FILE):
        try:
            stamp.append((folder / name).stat().st_mtime_ns)
        except OSError:
            stamp.append(None)
    return tuple(stamp)


# -- evaluate -------------------------------------------------------------------------------------------


def _evaluate(args, progress: Progress) -> int:
    from core.device import resolve_device
    from core.minerals.datasets import collection_fingerprint, scan_photo_folder
    from core.minerals.multimodal import robustness_table
    from core.minerals.saved import load_model

    device = resolve_device(args.device)
    record = RunRecord("minerals evaluate", vars(args))
    results, loaded = {}, []
    for folder in args.model:
        network, info = load_model(folder, device)
        loaded.append((folder, network, info))
    with atomic_output_dir(args.out) if args.out else contextlib.nullcontext(None) as staging:
        for i, (folder, network, info) in enumerate(loaded):
            progress.stage("evaluate", f"Evaluating {folder}", weight=1.0 / len(loaded))
            split = info["split"]
            collection = scan_photo_folder(args.data, split["val_fraction"], split["test_fraction"], split["seed"],
                                           args.properties, classes=info["classes"])
            if collection_fingerprint(collection) != info.get("data_fingerprint"):
                progress.warn(f"{args.data} is not the photo set {folder} was trained on: its {args.split} photos may "
                              f"include training photos")
            label = f"{Path(folder).name} ({info['kind']})"
            key = f"{i + 1}:{Path(folder).name}"
            if info["kind"] == "multimodal":
                rows = robustness_table(network, collection, args.split, int(info["image_size"]), device)
                _log_robustness(rows, progress)
                results[key] = {"kind": "multimodal", "robustness": rows}
                continue
            sub = None
            if staging is not None:
                sub = staging / key.replace(":", "_")
                sub.mkdir()
            results[key] = {"kind": info["kind"], **_evaluate_photo_model(
                network, collection, args.split, int(info["image_size"]), info["tail_classes"], device, sub,
                progress, label)}
        if len(results) > 1 and progress.mode != "json":
            _print_comparison(results)
        record["metrics"] = results
        if staging is not None:
            (staging / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
            record.write(staging / "run.json")
    progress.result(metrics={k: _headline(v) for k, v in results.items()},
                    outputs={"folder": str(args.out)} if args.out else {})
    return 0


def _print_comparison(results: dict) -> None:
    print(f"{'model':<28}" + "".join(f"{k:>11}" for k in HEADLINE))
    for key, metrics in results.items():
        if metrics.get("kind") == "multimodal":
            continue
        print(f"{key:<28}" + "".join(f"{metrics.get(k, float('nan')):>11.4f}" for k in HEADLINE))
