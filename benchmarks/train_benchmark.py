"""Naive Keras fine-tuning against the frozen-feature cache (float32, bf16), side by side, near the machine's limit.

    .venv/bin/python benchmarks/train_benchmark.py [--quick] [--out FILE.json] [--naive-epochs N] [--naive-batches N]
                                                   [--backbones vgg16,resnet50] [--epochs N] [--size PX]
                                                   [--counts TRAIN,VAL,TEST] [--probe-images N]
                                                   [--measured-naive vgg16|none] [--suffix-rows N]
                                                   [--suffix-epochs N] [--suffix-size PX] [--suffix-scale X]
                                                   [--suffix-only] [--no-suffix-reference]
    python -m heroes bench [--quick] [--out FILE.json]          (the same, without the other options)

What it measures and the JSON it writes: ``heroes/benchmarking/measure.py``; ``--help`` lists every option.
"""

import sys

from heroes.benchmarking import command

if __name__ == "__main__":
    sys.exit(command.main())
