"""Command-line sub-commands, thin over the modules: bad input is one line and exit code 2."""

import argparse
import contextlib
import math
import os
import signal
import sys

from heroes import __version__, paths, progress
from heroes.errors import UserError

# The registry's names (heroes.models.backbones.list_backbones; a test keeps them equal), spelt out here because
# the registry imports Keras and `--help` should not wait for TensorFlow.
BACKBONES = ("efficientnet_lite0", "efficientnetb0", "mobilenetv2", "resnet50", "resnet50v2", "vgg16", "vgg19")

INTERRUPTS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}  # Ctrl-C; timeout, CI, docker stop
RENAMED = {"--size": "--image-size"}  # old spelling -> new one; the old one works until heroes 0.2, with a note


class _Renamed(argparse.Action):
    """An old spelling of an option, hidden from ``--help``: stores under the new name and says so on stderr."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"note: {option_string} is deprecated (removed in heroes 0.2); use {RENAMED[option_string]}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


class _CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: ``--verbose`` and ``--quiet`` work after the sub-command as well as before it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # SUPPRESS: an option not given after the sub-command leaves the value given before it alone
        _add_output_options(self, default=argparse.SUPPRESS)


def _add_output_options(parser, default) -> None:
    """``--verbose`` and ``--quiet`` (listed last in ``--help``): they set the environment that later imports and
    notebook kernels read."""
    output = parser.add_argument_group("output")
    output.add_argument("--verbose", action="store_true", default=default,
                        help="show TensorFlow's start-up and INFO lines and every repeated warning (HEROES_VERBOSE=1)")
    output.add_argument("--quiet", action="store_true", default=default,
                        help="hide progress bars (HEROES_QUIET=1); epoch lines, results, warnings and errors still "
                             "print")


def _add_image_size(parser, **kwargs) -> None:
    """``--image-size`` with ``kwargs``, and its old spelling ``--size`` for one release."""
    parser.add_argument("--image-size", **kwargs)
    parser.add_argument("--size", dest="image_size", type=kwargs.get("type"), action=_Renamed,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _count_or_fraction(text: str) -> float:
    """Accept a per-class count (``200``) or a fraction of the class (``0.8``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a fraction, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value >= 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"expected a whole count or a fraction in [0, 1), got {text!r}")
    return value


def _synth(args) -> int:
    from heroes.data.synthetic import dataset
    from heroes.io import check_output_path, printable

    _check_synth_size(args.image_size)
    if args.truth is not None:
        check_output_path(args.truth, forbidden_dirs=(args.out,))
    summary = dataset.write_dataset(
        args.out, per_class=args.per_class, size=args.image_size, seed=args.seed,
        dirt=args.dirt, truth_path=args.truth, progress=not args.quiet,
    )
    print(printable(summary))
    return 0


def _check_synth_size(size: int) -> None:
    """Refuse, before drawing, a size whose pictures would not fit the memory budget of decoding them."""
    from heroes.data.decode import DEFAULT_MAX_BYTES, image_bytes
    from heroes.data.synthetic.drawing import SUPERSAMPLE

    def needed(side: int) -> int:  # a supersampled RGB canvas, then float32 light and noise arrays at the final size
        return image_bytes((side * SUPERSAMPLE, side * SUPERSAMPLE), "RGB") + 2 * 12 * side * side

    if needed(size) > DEFAULT_MAX_BYTES:
        largest = math.isqrt(DEFAULT_MAX_BYTES // 40)
        while needed(largest) > DEFAULT_MAX_BYTES:
            largest -= 1
        raise UserError(f"--image-size {size} needs {needed(size) / 2**20:,.0f} MiB per picture, over the "
                        f"{DEFAULT_MAX_BYTES / 2**20:,.0f} MiB memory budget; the largest size is {largest}")


def _scan(args) -> int:
    from heroes.data.scan import describe_manifest, scan, write_manifest
    from heroes.io import check_output_path

    check_output_path(args.out, forbidden_dirs=(args.dir,))  # before the scan, not after minutes of it
    manifest = scan(args.dir)
    write_manifest(manifest, args.out)
    print(describe_manifest(manifest, args.out))
    return 0


def _split(args) -> int:
    from heroes.data import split
    from heroes.data.scan import dataset_roots, read_manifest
    from heroes.io import check_output_path

    manifest = read_manifest(args.manifest)
    places = {"inputs": (args.manifest,), "forbidden_dirs": dataset_roots(manifest)}
    check_output_path(args.out, **places)
    splits = split.make_splits(manifest, train=args.train, val=args.val, test=args.test, seed=args.seed)
    split.write_splits(splits, args.out, **places)
    print(split.describe_splits(splits, args.out))
    return 0


def _clean(args) -> int:
    from heroes.cleaning import flags
    from heroes.cleaning.leakage import check_threshold

    threshold = flags.NEAR_THRESHOLD if args.threshold is None else args.threshold
    check_threshold(threshold)
    if args.min_side < 0:
        raise UserError(f"--min-side must be a number of pixels >= 0, got {args.min_side}")
    config = flags.CleanConfig(near_threshold=threshold, min_side=args.min_side, outliers=args.outliers,
                               backbone=args.backbone)
    print(flags.run(args.manifest, args.out, args.decisions, args.clean_manifest, config, progress=not args.quiet))
    return 0


def _leakage(args) -> int:
    from heroes.cleaning import leakage
    from heroes.data import split
    from heroes.data.scan import dataset_roots, read_manifest
    from heroes.io import absolute_paths, check_output_path, write_csv

    splits = split.read_splits(args.splits)
    if args.out:
        check_output_path(args.out, inputs=(args.splits, args.manifest), forbidden_dirs=dataset_roots(splits))
    if args.manifest:
        leakage.check_same_manifest(splits, read_manifest(args.manifest), args.splits, args.manifest)
    leaks = leakage.find_leaks(splits, args.threshold, progress=not args.quiet)
    if args.out:
        write_csv(leaks.assign(path_a=absolute_paths(leaks["path_a"]), path_b=absolute_paths(leaks["path_b"])),
                  args.out, for_people=True)
    print(leakage.describe_leaks(leaks, args.out))
    return 0


def _predict(args) -> int:
    from heroes.serving import predict

    return predict.run(args.inputs, args.model, top_k=args.top_k, as_json=args.json, batch_size=args.batch_size,
                       progress=False if args.quiet else None)  # None: a bar when stderr is a terminal


def _export(args) -> int:
    from heroes.serving import export

    out = export.export_model(args.model, args.format, args.out, quantize=args.quantize)
    print(export.describe_export(out, args.format, args.quantize))
    return 0


def _serve(args) -> int:
    from heroes.serving import serve

    return serve.run(args.model, host=args.host, port=args.port)


def _bench(args) -> int:
    from heroes.benchmarking import command
    from heroes.io import check_output_path

    if args.out:
        check_output_path(args.out)
    return command.run(out=args.out, quick=args.quick)


def _train(args) -> int:
    from heroes.training import folder, spec

    # options left out are absent from ``args`` (argparse.SUPPRESS): the spec's own defaults apply
    given = {name: value for name, value in vars(args).items() if name in spec.defaults()}
    if "split" in given:
        given["split"] = spec.parse_split(given["split"])
    resolved = spec.TrainSpec(args.data_dir, **given).resolve()  # every value checked before any data is read
    # --quiet: no bars and no per-epoch lines; the result below is still printed
    print(folder.describe(folder.train_folder(resolved, args.out, force=args.force, progress=not args.quiet)))
    return 0


def _reproduce(args) -> int:
    from heroes.reporting import reproduce

    return reproduce.reproduce(seeds=args.seeds, size=args.image_size, per_class=args.per_class, epochs=args.epochs)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m heroes`` parser with every sub-command of the design card."""
    parser = argparse.ArgumentParser(prog="python -m heroes", description=__doc__)
    parser.add_argument("--version", action="version", version=f"heroes {__version__}")
    _add_output_options(parser, default=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser)

    synth = commands.add_parser("synth", help="draw the embedded superhero dataset")
    synth.add_argument("--out", required=True, help="folder to create; one sub-folder per class")
    synth.add_argument("--per-class", type=int, default=250, help="images per class (default 250)")
    _add_image_size(synth, type=int, default=224, help="image side in pixels (default 224)")
    synth.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    synth.add_argument("--dirt", action="store_true", help="inject the defects cleaning must find")
    synth.add_argument("--truth", help="CSV with one row per injected defect: path,kind,source")
    synth.set_defaults(handler=_synth)

    scan = commands.add_parser("scan", help="decode every file under DIR into a manifest (read-only)")
    scan.add_argument("dir", metavar="DIR", help="folder of class sub-folders")
    scan.add_argument("--out", required=True, help="manifest CSV to write")
    scan.set_defaults(handler=_scan)

    split = commands.add_parser("split", help="stratified, group-aware, stable train/val/test split")
    split.add_argument("manifest", metavar="MANIFEST", help="manifest CSV from scan (or the cleaned manifest)")
    split.add_argument("--out", required=True, help="splits CSV to write")
    split.add_argument("--train", type=_count_or_fraction, default=200, help="per-class count or fraction (200)")
    split.add_argument("--val", type=_count_or_fraction, default=25, help="per-class count or fraction (25)")
    split.add_argument("--test", type=_count_or_fraction, default=25, help="per-class count or fraction (25)")
    split.add_argument("--seed", type=int, default=0, help="seed of the content hash (default 0)")
    split.set_defaults(handler=_split)

    clean = commands.add_parser("clean", help="flag duplicates, broken and odd images; replay review decisions")
    clean.add_argument("manifest", metavar="MANIFEST", help="manifest CSV from scan")
    clean.add_argument("--out", required=True, help="flags CSV to write: path,flag,group_id,action,reason")
    clean.add_argument("--decisions", default=str(paths.REVIEW / "decisions.csv"),
                       help="review decisions sha256,decision,label,note (default data/review/decisions.csv)")
    clean.add_argument("--clean-manifest", default=str(paths.INTERIM / "clean_manifest.csv"),
                       help="cleaned manifest to write (default data/interim/clean_manifest.csv)")
    clean.add_argument("--threshold", type=int,
                       help="near-duplicate hash distance, bits of 384 (default: the measured one)")
    clean.add_argument("--min-side", type=int, default=64, help="shorter side under this is tiny (default 64)")
    clean.add_argument("--outliers", action="store_true", help="also send k-NN outliers of each class to review")
    clean.add_argument("--backbone", metavar="BACKBONE",
                       help=f"embed with this ImageNet backbone, one of: {', '.join(BACKBONES)} (efficientnet_lite0 "
                            f"offline), and send off-class images and probable label errors to review")
    clean.set_defaults(handler=_clean)

    leakage = commands.add_parser("leakage", help="list exact/near-duplicate pairs that cross train/val/test")
    leakage.add_argument("splits", metavar="SPLITS", help="splits CSV from split")
    leakage.add_argument("--manifest", help="the manifest the split was made from (checked)")
    leakage.add_argument("--out", help="CSV of the crossing pairs")
    leakage.add_argument("--threshold", type=int, help="near-duplicate hash distance (default: the cleaning one)")
    leakage.set_defaults(handler=_leakage)

    train = commands.add_parser("train", help="scan, clean, split and train a classifier on a folder of class folders",
                                argument_default=argparse.SUPPRESS)  # defaults: heroes.training.spec.TrainSpec's
    train.add_argument("data_dir", metavar="DATA_DIR", help="folder with one sub-folder per class (only read)")
    train.add_argument("--out", required=True, help="run folder to write (model, metrics, summary.md, tensorboard/)")
    train.add_argument("--recipe", choices=("fine_tune", "study"),
                       help="fine_tune (default: head on cached features, then the top of the backbone fine-tuned "
                            "on augmented views; chosen on real photos) or study (SGD under --policy)")
    train.add_argument("--backbone", choices=BACKBONES, metavar="BACKBONE",
                       help="one of: %(choices)s (default efficientnet_lite0: ImageNet weights offline)")
    train.add_argument("--policy", choices=("study", "linear_probe", "full"),
                       help="--recipe study only: what trains (default study: the last stage and the new output)")
    train.add_argument("--weights", help="auto, imagenet, none or a weights file (default auto)")
    train.add_argument("--epochs", type=int, help="training epochs (default: fine_tune 8, study 10)")
    train.add_argument("--lr", type=float, dest="learning_rate",
                       help="learning rate (default: fine_tune 3e-4 peak AdamW, study 0.001 SGD)")
    train.add_argument("--batch-size", type=int, help="images per step (default: fine_tune 32, study 16)")
    train.add_argument("--label-smoothing", type=float, help="--recipe fine_tune only (default 0.1)")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction,
                       help="augment training images (default: on for fine_tune, off for study)")
    train.add_argument("--tta", action=argparse.BooleanOptionalAction,
                       help="--recipe fine_tune only: average each test image with its mirror (default off)")
    train.add_argument("--image-size", type=int, help="input side in pixels (default: the backbone's, 224)")
    train.add_argument("--seed", type=int, help="seed of the split and the training (default 0)")
    train.add_argument("--split", help="train,val,test fractions per class (default 0.8,0.1,0.1)")
    train.add_argument("--cache-dir", help="decoded images and features (default $HEROES_CACHE_DIR or the user cache)")
    train.add_argument("--force", action="store_true", default=False, help="replace a run already in --out")
    train.set_defaults(handler=_train)

    predict = commands.add_parser("predict", help="top-k classes of images or folders with a saved model")
    predict.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders (recursive)")
    predict.add_argument("--model", required=True, help="saved .keras model (class names beside it) or run folder")
    predict.add_argument("--top-k", type=int, default=3, help="classes shown per image (default 3)")
    predict.add_argument("--json", action="store_true", help="one JSON object per image instead of a table")
    predict.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    predict.set_defaults(handler=_predict)

    export = commands.add_parser("export", help="export a saved model as a TF SavedModel, ONNX or TFLite for serving")
    export.add_argument("--model", required=True, help="saved .keras model (class names beside it) or run folder")
    export.add_argument("--format", choices=("savedmodel", "onnx", "tflite"), default="savedmodel",
                        help="one of: %(choices)s (default savedmodel)")
    export.add_argument("--quantize", choices=("none", "float16", "dynamic"), default="none",
                        help="tflite only: none, float16 (half-size weights) or dynamic (int8 weights) (default none)")
    export.add_argument("--out", help="destination (default beside the model: model_savedmodel/, model.onnx, "
                                      "model.tflite or model_<quantize>.tflite)")
    export.set_defaults(handler=_export)

    serve = commands.add_parser("serve", help="a demo page: drop images, see top-k bars, Grad-CAM and the model card")
    serve.add_argument("--model", required=True, help="run folder from train (or a saved .keras model)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    serve.set_defaults(handler=_serve)

    bench = commands.add_parser("bench", help="naive vs cached training, side by side, and the matmul ceiling")
    bench.add_argument("--out", help="JSON to write (default reports/benchmarks/latest.json)")
    bench.add_argument("--quick", action="store_true", help="tiny sizes, a few minutes (JSON: latest-quick.json)")
    bench.set_defaults(handler=_bench)

    reproduce = commands.add_parser("reproduce", help="run notebooks 01-04 headlessly (what `make reproduce` calls)")
    reproduce.add_argument("--seeds", type=int, help="number of seeds (default: each notebook's own, 3)")
    _add_image_size(reproduce, type=int, help="image size in pixels (default 224)")
    reproduce.add_argument("--per-class", type=int, help="embedded images per class when data/raw is empty (250)")
    reproduce.add_argument("--epochs", type=int, help="training epochs (default 10)")
    reproduce.set_defaults(handler=_reproduce)
    return parser


def main(argv=None) -> int:
    """Run one sub-command; return its exit status: 2 on bad input, 130 on Ctrl-C (imports included) and 143 on
    SIGTERM, each with one line on stderr; 141 when stdout's reader goes away (``| head``), quietly, as a writer
    killed by SIGPIPE. An interrupted command removes its temporary files on the way out."""
    _replace_what_the_locale_cannot_show()
    with _noting_interrupts() as interrupted:
        try:
            args = build_parser().parse_args(argv)
            if args.verbose and args.quiet:
                raise UserError("--verbose and --quiet contradict each other; give one of them")
            if args.verbose:  # before any handler imports TensorFlow, and inherited by notebook kernels
                os.environ.update(HEROES_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="0")
            if args.quiet:  # read by every progress bar, here and in notebook kernels
                os.environ[progress.QUIET_ENV] = "1"
            from heroes import machine

            machine.prepare_process()  # TensorFlow's process settings, before any handler imports it
            status = args.handler(args)
            sys.stdout.flush()  # a reader that went away shows here, not in the interpreter's last flush
            return status
        except UserError as error:
            if interrupted:  # e.g. "a worker process died": killed by the same SIGTERM
                return _interrupted(interrupted)
            from heroes.io import printable

            print(f"error: {printable(str(error))}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            return _reader_gone()
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt) or interrupted:  # an import cut short raises ImportError
                return _interrupted(interrupted)
            raise


def _interrupted(noted) -> int:
    """Say which signal ended the command, on one line; return 128 + its number (Ctrl-C when none was noted)."""
    signum = noted[-1] if noted else signal.SIGINT
    print(INTERRUPTS[signum], file=sys.stderr)
    return 128 + signum


@contextlib.contextmanager
def _noting_interrupts():
    """Within the block Ctrl-C and SIGTERM raise KeyboardInterrupt, so ``finally`` blocks remove temporary files,
    and are noted in the yielded list, so whatever exception they cause (a half-done import, a worker pool
    shutting down) still reads as an interrupt."""
    noted = []

    def note(signum, frame):
        noted.append(signum)
        signal.default_int_handler(signum, frame)

    previous = {}
    try:
        for signum in INTERRUPTS:
            if signal.getsignal(signum) is not signal.SIG_IGN:  # a background job keeps ignoring Ctrl-C
                previous[signum] = signal.signal(signum, note)
    except ValueError:  # not the main thread: signals are not ours to handle
        pass
    try:
        yield noted
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _replace_what_the_locale_cannot_show() -> None:
    """A name the locale's encoding lacks (an emoji under Latin-1) prints as ``\\U0001f987``, never a traceback."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):  # replaced by a stream without it (tests), or closed
            stream.reconfigure(errors="backslashreplace")


def _reader_gone() -> int:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail again, and return 128 + SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # stdout replaced (tests, notebooks) or closed
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
