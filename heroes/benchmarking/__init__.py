"""The training benchmark, naive Keras fine-tuning against the frozen-feature cache (``python -m heroes bench``).

``settings`` (what a run measures), ``clocks`` (CPU seconds, the RSS/load ``Monitor``), ``probes`` (machine record,
matmul ceilings, prefix FLOPs and probe), ``rows`` (naive and cached rows), ``suffix`` (VGG16's suffix, direct vs
span), ``analysis`` (ratios, headline, targets), ``measure`` (``run_benchmark``), ``report`` (markdown) and
``command`` (the options of ``benchmarks/train_benchmark.py``; ``run``, which ``python -m heroes bench`` calls).
"""
