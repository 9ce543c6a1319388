"""The reproduce budget counts the notebooks' real workload and FLOPs (measurement itself is left to the script)."""

import importlib.util

import pytest

from heroes import paths


@pytest.fixture(scope="module")
def budget():
    spec = importlib.util.spec_from_file_location("reproduce_budget", paths.PROJ_ROOT / "benchmarks" / "reproduce_budget.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workload_is_notebook_02_once_and_every_seed_of_the_six_class_runs(budget):
    plan = budget.workload(seeds=3, epochs=10)
    assert plan["extracted"] == 1500  # every image once per prefix: 02's images are a subset of the six classes'
    assert [name for name, _ in plan["runs"]] == ["02", "04", "04", "04"]  # 03's VGG16 run is 04's first seed
    assert plan["runs"][0][1] == {"train": 400, "val": 50, "test": 50}
    assert plan["runs"][1][1] == {"train": 1200, "val": 150, "test": 150}


def test_run_flops_count_three_passes_per_training_image(budget):
    sizes = {"train": 10, "val": 2, "test": 4}
    assert budget.run_flops(sizes, epochs=2, suffix_gflop=1.0) == 2 * (30 + 2) + 4


def test_budget_without_measuring_counts_vgg16_and_resnet50(budget):
    result = budget.budget(seeds=1, epochs=1, image_size=32, measure=False)
    vgg16, resnet50 = result["backbones"]
    # VGG16's suffix at 32 px: fc1 512x4096 + fc2 4096x4096 + 4096x6 multiply-adds, twice.
    assert vgg16["suffix_gflop_per_image"] == pytest.approx(2 * (512 * 4096 + 4096 * 4096 + 4096 * 6) / 1e9, abs=1e-3)
    assert resnet50["prefix_gflop_per_image"] > 0 and result["minutes_at_matmul_rate"] is None
    assert "needs" in budget.markdown(result)
