"""Settings of one training-benchmark run (``FULL``: the study's, ``QUICK``: a few minutes), outputs, targets."""

import dataclasses

from heroes import paths

DEFAULT_OUT = paths.REPORTS / "benchmarks" / "latest.json"
QUICK_OUT = paths.REPORTS / "benchmarks" / "latest-quick.json"
TARGET_SPEEDUP = 15.0
TARGET_SUFFIX = 4.0  # VGG16's suffix per epoch, span over direct
TARGET_CEILING_FRACTION = 0.5
TARGET_ACCURACY_POINTS = 2.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one benchmark run measures; ``FULL`` is the study's configuration, ``QUICK`` a few-minute check."""

    image_size: int = 224
    train: int = 200  # images per class
    val: int = 25
    test: int = 25
    batch_size: int = 16
    epochs: int = 10  # the run every row's wall time is for
    naive_epochs: int = 1  # epochs the naive path really runs; >= epochs: a full, measured run with test accuracy
    naive_batches: int | None = None  # training batches timed per naive epoch (None: the whole epoch)
    backbones: tuple = ("vgg16", "resnet50")
    measured_naive: tuple = ("vgg16",)  # backbones whose naive path trains every epoch (measured, test accuracy)
    suffix_rows: int = 1200  # VGG16 suffix alone, direct vs span: training rows (the study's 6 x 200)
    suffix_val: int = 150  # ... validation rows, whose probabilities the two paths are compared on
    suffix_epochs: int = 4  # ... epochs (the first also traces the step functions)
    suffix_image_size: int = 224  # ... image size setting fc1's inputs (224 px: 7 x 7 x 512 = 25,088)
    suffix_feature_scale: float = 0.1  # ... random features are scale * max(N(0, 1), 0); 1 makes SGD chaotic
    suffix_reference: bool = True  # ... and the direct path again with XLA toggled: float32 round-off's own spread
    matmul_sizes: tuple = (2048, 4096)  # the ceiling is the best of these, before and after the rows
    matmul_reps: int = 4
    probe_images: int = 32  # images per pass of the float32 / bf16 prefix probe
    seed: int = 0
    sample_seconds: float = 0.2  # RSS and load-average sampling period


FULL = Settings()
QUICK = Settings(image_size=64, train=8, val=2, test=2, epochs=2, naive_epochs=1, matmul_sizes=(1024,), matmul_reps=3,
                 probe_images=16, suffix_rows=96, suffix_val=16, suffix_epochs=2, suffix_image_size=64,
                 suffix_reference=False)
