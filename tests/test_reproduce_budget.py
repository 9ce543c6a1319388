"""The reproduce budget counts the notebooks' real workload and FLOPs (measurement itself is left to the script)."""

import pytest
from benchmark_scripts import load_script


@pytest.fixture(scope="module")
def budget():
    return load_script("reproduce_budget")


def test_workload_is_notebook_02_once_and_every_seed_of_the_six_class_runs(budget):
    plan = budget.workload(seeds=3, epochs=10)
    assert plan["extracted"] == 1500  # every image once per prefix: 02's images are a subset of the six classes'
    assert [name for name, _ in plan["runs"]] == ["02", "04", "04", "04"]  # 03's VGG16 run is 04's first seed
    assert plan["runs"][0][1] == {"train": 400, "val": 50, "test": 50}
    assert plan["runs"][1][1] == {"train": 1200, "val": 150, "test": 150}


def test_run_flops_count_three_passes_per_training_image(budget):
    sizes = {"train": 10, "val": 2, "test": 4}
    assert budget.run_flops(sizes, epochs=2, suffix_gflop=1.0) == 2 * (30 + 2) + 4


def test_budget_without_measuring_counts_every_backbone_the_notebooks_train(budget, tmp_path):
    result = budget.budget(seeds=1, epochs=1, image_size=32, measure=False, measured=tmp_path / "absent.json")
    vgg16, resnet50, efficientnet = result["backbones"]
    assert efficientnet["backbone"] == "efficientnet_lite0" and efficientnet["prefix_gflop_per_image"] > 0
    assert result["measured_minutes"] is None
    # VGG16's suffix at 32 px: fc1 512x4096 + fc2 4096x4096 + 4096x6 multiply-adds, twice.
    assert vgg16["suffix_gflop_per_image"] == pytest.approx(2 * (512 * 4096 + 4096 * 4096 + 4096 * 6) / 1e9, abs=1e-3)
    assert resnet50["prefix_gflop_per_image"] > 0 and result["minutes_at_matmul_rate"] is None
    assert "needs" in budget.markdown(result)


def test_measured_minutes_read_the_reproduce_record(budget, tmp_path):
    record = tmp_path / "reproduce.json"
    record.write_text('{"finished": "x", "parameters": {}, "total_s": 90.0, '
                      '"notebooks": [{"name": "01-data-cleaning", "seconds": 30.0}, {"name": "04-vgg-vs-resnet", "seconds": 60.0}]}')
    assert budget.measured_minutes(record) == {"finished": "x", "parameters": {}, "total": 1.5,
                                                "notebooks": {"01-data-cleaning": 0.5, "04-vgg-vs-resnet": 1.0}}
    assert budget.measured_minutes(tmp_path / "missing.json") is None


def test_prefix_flops_count_depthwise_convolutions(budget):
    import keras

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(inputs)  # 8x8 x 3x3 x 3 x 2
    outputs = keras.layers.Conv2D(4, 1)(outputs)  # 8x8 x 1x1 x 6 x 4
    model = keras.Model(inputs, outputs)
    assert budget.probes.prefix_flops(model) == 2 * 64 * (9 * 3 * 2) + 2 * 64 * (6 * 4)
