"""Training on several devices with tf.distribute: strategies by name, batch/learning-rate scaling, feature shards."""

# Scaling rule: global batch = per-replica batch x replicas. TrainConfig.batch_size is the GLOBAL batch of one step:
# each of N replicas takes batch_size / N examples (it must divide evenly) and their gradients are summed, so every
# step computes what one device computes on the same global batch, up to float summation order. To use N devices
# for throughput instead, keep the per-replica batch: scaled_config(config, N) multiplies batch_size by N and, under
# the linear rule (Goyal et al. 2017), the learning rate by N; rule="none" keeps the learning rate.
#
# multiworker: the strategy is built from TF_CONFIG and trains with one worker, but Keras 3.15's fit fails with
# several (keras-team/keras#20585, reproduced here with a plain Dense model), so strategy_for refuses that case.
#
# Frozen-feature cache in parallel: worker i of n extracts only the images with shard_of(sha256, n) == i
# (extract_feature_shard, or python -m heroes.distribute extract SPLITS.csv --shard i/n) into one shared cache
# folder; a training run afterwards finds every feature computed and only reads them.

import argparse
import dataclasses
import json
import os
import sys

from heroes.errors import UserError

STRATEGIES = ("none", "mirrored", "multiworker")
LR_RULES = ("none", "linear")
MULTIWORKER_BUG = "https://github.com/keras-team/keras/issues/20585"
_MULTIWORKER = []  # at most one per process: collective ops are configured once, at start-up


# ---------------------------------------------------------------- strategies


def read_tf_config(environ=None) -> dict:
    """The parsed ``TF_CONFIG`` of a multi-worker cluster; ``UserError`` saying what is missing or malformed."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not text.strip():
        raise UserError('strategy "multiworker" needs TF_CONFIG, e.g. {"cluster": {"worker": ["host1:12345", '
                        '"host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    try:
        tf_config = json.loads(text)
        workers = tf_config["cluster"]["worker"]
        task = tf_config["task"]
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"TF_CONFIG is malformed ({type(error).__name__}: {error}); "
                        "it needs cluster.worker (a list of host:port) and task.type/task.index") from None
    if kind not in tf_config["cluster"] or not 0 <= index < len(tf_config["cluster"][kind]) or not workers:
        raise UserError(f"TF_CONFIG task {kind}:{index} is not in its cluster {tf_config['cluster']}")
    return tf_config


def _local_devices(tensorflow) -> list:
    """Every GPU; without one, every (logical) CPU, so two logical CPUs make a real two-replica test."""
    gpus = tensorflow.config.list_logical_devices("GPU")
    return [device.name for device in (gpus or tensorflow.config.list_logical_devices("CPU"))]


def make_strategy(name: str = "none"):
    """A ``tf.distribute`` strategy by name: none (the default strategy), mirrored (all local GPUs, else all
    logical CPUs), multiworker (``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``; create it first thing in the
    process, later calls return the same one)."""
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    import tensorflow

    if name == "none":
        return tensorflow.distribute.get_strategy()
    if name == "mirrored":
        return tensorflow.distribute.MirroredStrategy(devices=_local_devices(tensorflow))
    if not _MULTIWORKER:
        read_tf_config()
        try:
            _MULTIWORKER.append(tensorflow.distribute.MultiWorkerMirroredStrategy())
        except RuntimeError as error:  # "Collective ops must be configured at program startup"
            raise UserError(f"{error}: call heroes.distribute.make_strategy('multiworker') first thing in the "
                            "process, before any other TensorFlow work") from None
    return _MULTIWORKER[0]


def replicas(strategy=None) -> int:
    """Replicas that share one step: 1 for the default strategy."""
    if strategy is None:
        import tensorflow

        strategy = tensorflow.distribute.get_strategy()
    return int(strategy.num_replicas_in_sync)


def scaled_learning_rate(learning_rate: float, replica_count: int, rule: str = "linear") -> float:
    """``learning_rate x replicas`` under the linear rule, unchanged under ``none``."""
    if rule not in LR_RULES:
        raise UserError(f"unknown learning-rate rule {rule!r}; known: {', '.join(LR_RULES)}")
    return learning_rate * replica_count if rule == "linear" else learning_rate


def scaled_config(config, replica_count: int, rule: str = "linear"):
    """``config`` for N replicas at the same per-replica batch: batch_size x N, the learning rate by ``rule``."""
    return dataclasses.replace(config, batch_size=config.batch_size * replica_count,
                               learning_rate=scaled_learning_rate(config.learning_rate, replica_count, rule))


def check_batch(batch_size: int, strategy) -> int:
    """The per-replica batch; ``UserError`` unless the global ``batch_size`` splits evenly over the replicas."""
    count = replicas(strategy)
    if batch_size % count:
        raise UserError(f"batch_size {batch_size} does not split evenly over {count} replicas; "
                        f"use a multiple of {count} (global batch = per-replica batch x replicas)")
    return batch_size // count


def strategy_for(config, environ=None):
    """The strategy ``config.strategy`` names for ``train_run``, once its global batch splits over the replicas.

    Refuses a cluster of several workers up front: Keras 3.15's ``fit`` all-reduces its first data batch under
    ``MultiWorkerMirroredStrategy`` and fails there (keras-team/keras#20585); better one line than a traceback
    after every worker has connected.
    """
    name = getattr(config, "strategy", "none")
    cluster = read_tf_config(environ)["cluster"] if name == "multiworker" else {}
    if len(cluster.get("chief", [])) + len(cluster.get("worker", [])) > 1:
        raise UserError(f"Keras {_keras_version()} cannot fit under MultiWorkerMirroredStrategy with several workers "
                        f"({MULTIWORKER_BUG}); use strategy 'mirrored' on one machine")
    strategy = make_strategy(name)
    check_batch(config.batch_size, strategy)
    return strategy


def _keras_version() -> str:
    import keras

    return keras.__version__


# ---------------------------------------------------------------- feature-cache shards


def shard_of(sha256: str, count: int) -> int:
    """The shard (0..count-1) an image belongs to: its content hash modulo ``count``; stable across machines."""
    if count < 1:
        raise UserError(f"shard count must be at least 1, got {count}")
    return int(sha256, 16) % count


def parse_shard(text: str) -> tuple:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise UserError(f"shard must look like i/n (e.g. 0/4), not {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"shard {text!r}: need 0 <= i < n")
    return index, count


def shard_set(image_set, index: int, count: int):
    """The images of ``image_set`` in shard ``index`` of ``count``, order kept."""
    from heroes.arrays import ImageSet

    keep = [position for position, sha in enumerate(image_set.sha256) if shard_of(sha, count) == index]
    pick = lambda values: tuple(values[position] for position in keep)  # noqa: E731
    return ImageSet(image_set.images[keep], image_set.labels[keep], pick(image_set.paths), pick(image_set.sha256),
                    image_set.class_names)


def extract_feature_shard(config, sets: dict, shard=(0, 1), cache_dir=None, progress=True):
    """Fill the frozen-feature cache for one shard of ``sets`` exactly as ``heroes.train.train_run`` would.

    Same seed, weights and policy give the same prefix (hence the same cache folder) on every worker; train views
    ``range(config.views)``, val/test view 0, as the training run asks for. Returns the ``FeatureStore``.
    """
    from heroes import features, models, train

    index, count = parse_shard(shard) if isinstance(shard, str) else shard
    config = train.final_config(config)
    train.fresh_session(config)
    choice = models.choose_weights(config.backbone, config.weights, config.image_size)
    model = models.build_model(config.backbone, len(sets["train"].class_names), config.image_size, weights=choice,
                               policy=config.policy, dropout=config.dropout)
    prefix, _ = models.split_at_first_trainable(model)
    if not prefix.weights:
        raise UserError(f"policy {config.policy!r} trains the whole {config.backbone}: there are no frozen features")
    store = features.open_store(prefix, config.backbone, choice.source, config.image_size, config.feature_dtype,
                                cache_dir)
    extractor = prefix if config.feature_dtype == "float32" else features.bfloat16_prefix(prefix)
    for name, views in (("train", range(config.views)), ("val", (0,)), ("test", (0,))):
        if name in sets:
            features.ensure_features(extractor, store, shard_set(sets[name], index, count), tuple(views), progress)
    return store


def shard_splits(splits, index: int, count: int):
    """Rows of a splits/manifest frame in shard ``index`` of ``count`` (so a worker decodes only its own images)."""
    return splits[[shard_of(sha, count) == index for sha in splits["sha256"]]]


# ---------------------------------------------------------------- python -m heroes.distribute extract --shard i/n


def _extract(args) -> int:
    from heroes import arrays, split
    from heroes.config import TrainConfig

    index, count = parse_shard(args.shard)
    splits = split.read_splits(args.splits)
    class_names = arrays.class_names_of(splits[splits["split"].isin(["train", "val", "test"])])
    config = TrainConfig(backbone=args.backbone, policy=args.policy, image_size=args.image_size,
                         weights=args.weights, seed=args.seed, augment=args.views > 1,
                         views=max(args.views, 1), feature_dtype=args.feature_dtype)
    sets = arrays.load_split_arrays(shard_splits(splits, index, count), config.image_size, class_names,
                                    progress=not args.quiet)
    sets.setdefault("train", arrays.ImageSet(*_empty(config.image_size), (), (), class_names))
    store = extract_feature_shard(config, sets, (index, count), args.cache_dir, progress=not args.quiet)
    print(f"shard {index}/{count}: {store.computed} features computed, {store.reused} reused in {store.directory}")
    return 0


def _empty(size: int) -> tuple:
    import numpy

    return numpy.zeros((0, size, size, 3), numpy.uint8), numpy.zeros(0, numpy.int64)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m heroes.distribute", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    extract = commands.add_parser("extract", help="fill the frozen-feature cache for one shard of the images")
    extract.add_argument("splits", help="splits CSV from `python -m heroes split`")
    extract.add_argument("--shard", default="0/1", help="i/n: this worker's shard of n, by sha256 mod n (default 0/1)")
    extract.add_argument("--backbone", default="vgg16")
    extract.add_argument("--policy", default="study")
    extract.add_argument("--image-size", type=int, default=224)
    extract.add_argument("--weights", default="auto", help="as TrainConfig.weights: auto, imagenet, none or a file")
    extract.add_argument("--seed", type=int, default=0, help="matters only for random weights")
    extract.add_argument("--views", type=int, default=1, help="views per training image (1: no augmentation)")
    extract.add_argument("--feature-dtype", default="float32", help="float32, bfloat16 or auto")
    extract.add_argument("--cache-dir", help="shared cache folder (default data/processed/features)")
    extract.add_argument("--quiet", action="store_true", help="no progress bars")
    extract.set_defaults(handler=_extract)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
