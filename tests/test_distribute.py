"""distribute: MirroredStrategy on two logical CPUs trains the model one device trains; shards fill one cache."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from heroes.config import TrainConfig
from heroes.training import strategy
from heroes.training.shards import parse_shard, shard_of

TESTS = Path(__file__).resolve().parent

# Logical devices must be configured before TensorFlow initialises its devices, so this runs in a fresh process.
# One batch per epoch (24 images): Keras fetches PyDataset batches ahead of on_epoch_end, and how far ahead differs
# under a strategy, so with several batches the two runs would see the examples in a different order.
# VGG16: MobileNetV2's random-init features are dead at 32 px and its head would not move.
TWO_CPUS = r"""
import dataclasses, json, sys
import tensorflow
cpu = tensorflow.config.list_physical_devices("CPU")[0]
tensorflow.config.set_logical_device_configuration(cpu, [tensorflow.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
from heroes.training import runs, shards
from heroes.config import TrainConfig
from heroes.training.train import train_run
from test_features import coloured_set

classes = ("batman", "not_a_hero")
sets = {"train": coloured_set(24, 32, 1, classes), "val": coloured_set(8, 32, 2, classes),
        "test": coloured_set(8, 32, 3, classes)}
config = TrainConfig(backbone="vgg16", image_size=32, weights=None, epochs=3, batch_size=24, learning_rate=0.05)
cache = sys.argv[2] + "/features"
for shard in ("0/2", "1/2"):
    shards.extract_feature_shard(config, sets, shard, cache, progress=False)
out = {}
for name in ("none", "mirrored"):
    result = train_run(dataclasses.replace(config, strategy=name), sets, run_dir=f"{sys.argv[2]}/{name}",
                       cache_dir=cache, progress=False)
    out[name] = {
        "replicas": result.model.distribute_strategy.num_replicas_in_sync,
        "loss": result.history["loss"].tolist(), "val_loss": result.history["val_loss"].tolist(),
        "probabilities": result.predictions[runs.probability_columns(classes)].to_numpy().tolist(),
        "test_accuracy": result.metrics["test_accuracy"], "cache": result.metrics["feature_cache"],
        "strategy": json.load(open(f"{sys.argv[2]}/{name}/config.json"))["config"]["strategy"],
    }
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def two_cpus(tmp_path_factory):
    """Shards 0/2 and 1/2 extracted, then the same config trained with strategy none and mirrored (2 CPUs)."""
    folder = tmp_path_factory.mktemp("distribute")
    env = {**os.environ, "HEROES_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    done = subprocess.run([sys.executable, "-c", TWO_CPUS, str(TESTS), str(folder)], capture_output=True, text=True,
                          env=env, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        pytest.fail(f"two-CPU run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_mirrored_on_two_cpus_trains_the_same_model_as_one_device(two_cpus):
    import numpy

    one, two = two_cpus["none"], two_cpus["mirrored"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert (one["strategy"], two["strategy"]) == ("none", "mirrored")
    assert one["loss"][-1] < one["loss"][0] - 0.005  # it trains
    numpy.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-4)
    numpy.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=1e-4)
    numpy.testing.assert_allclose(two["probabilities"], one["probabilities"], atol=1e-4)
    assert two["test_accuracy"] == one["test_accuracy"]


def test_shards_by_hash_fill_the_cache_the_training_run_reads(two_cpus):
    # 24 train + 8 val + 8 test images, all extracted by the two shards; neither run computed a feature.
    for name in ("none", "mirrored"):
        assert two_cpus[name]["cache"]["computed"] == 0 and two_cpus[name]["cache"]["reused"] == 40


def test_shard_of_splits_every_hash_into_exactly_one_stable_shard():
    hashes = [f"{value:064x}" for value in range(0, 10**6, 997)]
    shards = [shard_of(value, 3) for value in hashes]
    assert set(shards) == {0, 1, 2} and shard_of("f" * 64, 3) == int("f" * 64, 16) % 3
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "x", "1/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_scaling_keeps_the_per_replica_batch_and_scales_the_learning_rate_linearly():
    config = TrainConfig(batch_size=16, learning_rate=0.001)
    scaled = strategy.scaled_config(config, 4)
    assert (scaled.batch_size, scaled.learning_rate) == (64, 0.004)
    assert strategy.scaled_config(config, 4, rule="none").learning_rate == 0.001
    with pytest.raises(ValueError, match="unknown learning-rate rule"):
        strategy.scaled_learning_rate(0.1, 2, "sqrt")


def test_strategy_names_and_batches_are_checked():
    with pytest.raises(ValueError, match="unknown strategy 'tpu'; known: none, mirrored, multiworker"):
        strategy.make_strategy("tpu")
    assert strategy.replicas(strategy.make_strategy("none")) == 1

    class ThreeReplicas:
        num_replicas_in_sync = 3

    assert strategy.check_batch(24, ThreeReplicas()) == 8
    with pytest.raises(ValueError, match="batch_size 16 does not split evenly over 3 replicas"):
        strategy.check_batch(16, ThreeReplicas())


def test_tf_config_is_read_and_checked():
    cluster = {"worker": ["a:1", "b:1"]}
    second = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})}
    assert strategy.read_tf_config(second)["task"]["index"] == 1
    one = {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}})}
    assert strategy.read_tf_config(one)["cluster"] == {"worker": ["a:1"]}
    with pytest.raises(ValueError, match='strategy "multiworker" needs TF_CONFIG'):
        strategy.read_tf_config({})
    with pytest.raises(ValueError, match="cannot fit under MultiWorkerMirroredStrategy with several workers"):
        strategy.strategy_for(TrainConfig(strategy="multiworker"), second)
    with pytest.raises(ValueError, match="TF_CONFIG is malformed"):
        strategy.read_tf_config({"TF_CONFIG": "{not json"})
    third = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 2}})}
    with pytest.raises(ValueError, match="task worker:2 is not in its cluster"):
        strategy.read_tf_config(third)
