"""The training benchmark's command line: options, their checks, ``main`` (the script), ``run`` (``heroes bench``)."""

import argparse
import dataclasses
import os
import signal
import sys
import threading
from pathlib import Path

from heroes import paths
from heroes.benchmarking import measure
from heroes.benchmarking.report import markdown
from heroes.benchmarking.settings import DEFAULT_OUT, FULL, QUICK, QUICK_OUT, Settings
from heroes.errors import UserError
from heroes.models.backbones import get_backbone


def _names(text):
    """None (not given), () for 'none', else the comma-separated names."""
    if text is None:
        return None
    return () if text.strip().lower() == "none" else tuple(name.strip() for name in text.split(",") if name.strip())


def parse_args(argv=None) -> tuple:
    """(``Settings``, output path) from the command line; ``UserError`` on a malformed ``--counts``."""
    parser = argparse.ArgumentParser(description=measure.__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes ({QUICK.image_size} px, "
                        f"{QUICK.train}/{QUICK.val}/{QUICK.test} per class, {QUICK.epochs} epochs)")
    parser.add_argument("--out", help=f"JSON to write (default {DEFAULT_OUT.relative_to(paths.PROJ_ROOT)}; "
                                      f"--quick: {QUICK_OUT.relative_to(paths.PROJ_ROOT)})")
    parser.add_argument("--naive-epochs", type=int, help=f"epochs the naive path really trains (default "
                                                         f"{FULL.naive_epochs}; >= --epochs: measured, with test "
                                                         "accuracy)")
    parser.add_argument("--naive-batches", type=int, help="training batches timed per naive epoch (default all)")
    parser.add_argument("--epochs", type=int, help=f"epochs of the run every wall time is for (default {FULL.epochs})")
    parser.add_argument("--backbones", help=f"comma-separated (default {','.join(FULL.backbones)})")
    parser.add_argument("--size", type=int, help=f"image side in pixels (default {FULL.image_size})")
    parser.add_argument("--counts", help=f"train,val,test images per class (default {FULL.train},{FULL.val},"
                                         f"{FULL.test})")
    parser.add_argument("--probe-images", type=int, help=f"images per prefix-probe pass (default {FULL.probe_images})")
    parser.add_argument("--measured-naive", help="comma-separated backbones whose naive path trains every epoch "
                                                 f"(default {','.join(FULL.measured_naive)}; 'none': all timed "
                                                 "and extrapolated)")
    parser.add_argument("--suffix-rows", type=int, help="VGG16 suffix direct vs span: training rows (default "
                                                        f"{FULL.suffix_rows}; 0 skips it)")
    parser.add_argument("--suffix-epochs", type=int, help=f"... its epochs (default {FULL.suffix_epochs})")
    parser.add_argument("--suffix-size", type=int, help="... the image size setting fc1's inputs (default "
                                                        f"{FULL.suffix_image_size})")
    parser.add_argument("--suffix-scale", type=float, help="... scale of its random features (default "
                                                           f"{FULL.suffix_feature_scale:g})")
    parser.add_argument("--suffix-only", action="store_true", help="only the suffix comparison (and the ceiling)")
    parser.add_argument("--no-suffix-reference", action="store_true",
                        help="skip the suffix's round-off reference (the direct path again, XLA toggled)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    overrides = {"naive_epochs": args.naive_epochs, "naive_batches": args.naive_batches, "epochs": args.epochs,
                 "backbones": () if args.suffix_only else _names(args.backbones),
                 "measured_naive": _names(args.measured_naive), "suffix_rows": args.suffix_rows,
                 "suffix_epochs": args.suffix_epochs, "suffix_image_size": args.suffix_size,
                 "suffix_feature_scale": args.suffix_scale,
                 "suffix_reference": False if args.no_suffix_reference else None,
                 "image_size": args.size, "probe_images": args.probe_images}
    if args.counts:
        try:
            overrides["train"], overrides["val"], overrides["test"] = (int(value) for value in args.counts.split(","))
        except ValueError:
            raise UserError(f"--counts takes three integers, train,val,test per class, not {args.counts!r}") from None
    settings = dataclasses.replace(settings, **{key: value for key, value in overrides.items() if value is not None})
    out = Path(args.out) if args.out else (QUICK_OUT if args.quick else DEFAULT_OUT)
    return settings, out


def check_settings(settings: Settings) -> None:
    """``UserError`` on settings that cannot be measured."""
    for name in ("epochs", "naive_epochs", "batch_size", "train", "val", "test", "matmul_reps", "probe_images",
                 "image_size"):
        if getattr(settings, name) < 1:
            raise UserError(f"{name} must be at least 1, got {getattr(settings, name)}")
    if not settings.matmul_sizes or min(settings.matmul_sizes) < 1:
        raise UserError(f"matmul_sizes must be positive sizes, got {settings.matmul_sizes}")
    if settings.naive_batches is not None and settings.naive_batches < 1:
        raise UserError(f"naive_batches must be at least 1, got {settings.naive_batches}")
    for backbone in (*settings.backbones, *settings.measured_naive):
        get_backbone(backbone)
    if settings.suffix_rows < 0 or (settings.suffix_rows and min(settings.suffix_val, settings.suffix_epochs) < 1):
        raise UserError("the suffix comparison needs suffix_rows >= 0 (0: skip), suffix_val and suffix_epochs >= 1")
    if settings.suffix_image_size < 32:
        raise UserError(f"suffix image size must be at least 32 px (VGG16's minimum), got {settings.suffix_image_size}")
    if not settings.backbones and not settings.suffix_rows:
        raise UserError("nothing to measure: no backbones and no suffix comparison")


def execute(argv=None) -> int:
    """Parse, check, measure, write the JSON, print the markdown tables; ``UserError`` on bad input."""
    settings, out = parse_args(argv)
    os.environ.setdefault("HEROES_OFFLINE", "1")  # weights=None throughout; this also rules out any download
    if threading.current_thread() is threading.main_thread():  # a killed run still removes its temporary folder
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    check_settings(settings)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a .json file")
    result = measure.run_benchmark(settings, out)
    print(f"\nwrote {out} ({result['total_wall_s']:.0f} s)\n")
    print(markdown(result), flush=True)
    return 0


def main(argv=None) -> int:
    """``benchmarks/train_benchmark.py``: ``execute``, with bad input as one line on stderr and exit status 2."""
    try:
        return execute(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(out=None, quick=False, extra=()) -> int:
    """``python -m heroes bench``: ``execute`` as the script's command line would (``extra``: more of its options,
    e.g. ``--suffix-only``); a ``UserError`` goes up to the caller's handler."""
    argv = (["--quick"] if quick else []) + (["--out", str(out)] if out else []) + list(extra)
    return execute(argv)
