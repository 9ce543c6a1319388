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
# (extract_feature_shard, or python -m heroes.training.shards extract SPLITS.csv --shard i/n) into one shared cache
# folder; a training run afterwards finds every feature computed and only reads them.

import dataclasses
import json
import os

from heroes.errors import UserError

STRATEGIES = ("none", "mirrored", "multiworker")
LR_RULES = ("none", "linear")
MULTIWORKER_BUG = "https://github.com/keras-team/keras/issues/20585"
_MULTIWORKER = []  # at most one per process: collective ops are configured once, at start-up


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
            raise UserError(f"{error}: call heroes.training.strategy.make_strategy('multiworker') first thing in the "
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
