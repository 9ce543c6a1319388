"""Sharded frozen-feature extraction: split a dataset by content hash so several machines fill one cache."""

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
# (extract_feature_shard, or python -m heroes.training.shards extract SPLITS.csv --shard i/n) into one shared cache
# folder; a training run afterwards finds every feature computed and only reads them.

import argparse
import sys

from heroes.errors import UserError


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
    from heroes.data.arrays import ImageSet

    keep = [position for position, sha in enumerate(image_set.sha256) if shard_of(sha, count) == index]
    pick = lambda values: tuple(values[position] for position in keep)  # noqa: E731
    return ImageSet(image_set.images[keep], image_set.labels[keep], pick(image_set.paths), pick(image_set.sha256),
                    image_set.class_names)


def extract_feature_shard(config, sets: dict, shard=(0, 1), cache_dir=None, progress=True):
    """Fill the frozen-feature cache for one shard of ``sets`` exactly as ``heroes.training.train.train_run`` would.

    Same seed, weights and policy give the same prefix (hence the same cache folder) on every worker; train views
    ``range(config.views)``, val/test view 0, as the training run asks for. Returns the ``FeatureStore``.
    """
    from heroes.training.cached import features
    from heroes.models import surgery
    from heroes.training import train
    from heroes.training.cached import suffix_fit
    from heroes.training import spec

    index, count = parse_shard(shard) if isinstance(shard, str) else shard
    config = spec.final_config(config)
    model, choice = train.build_run_model(config, len(sets["train"].class_names))
    prefix, _ = surgery.split_at_first_trainable(model)
    if not prefix.weights:
        raise UserError(f"policy {config.policy!r} trains the whole {config.backbone}: there are no frozen features")
    store = features.open_store(prefix, config.backbone, choice.source, config.image_size, config.feature_dtype,
                                cache_dir)
    shards = {name: shard_set(image_set, index, count) for name, image_set in sets.items()}
    return suffix_fit.extract_run_features(prefix, store, shards, config, progress)


def shard_splits(splits, index: int, count: int):
    """Rows of a splits/manifest frame in shard ``index`` of ``count`` (so a worker decodes only its own images)."""
    return splits[[shard_of(sha, count) == index for sha in splits["sha256"]]]


def _extract(args) -> int:
    from heroes.config import TrainConfig
    from heroes.data import arrays, split

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
    parser = argparse.ArgumentParser(prog="python -m heroes.training.shards", description=__doc__)
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
