"""heroes: superhero image classification with transfer learning, VGG vs ResNet, done honestly."""

import os

from heroes import allocator as _allocator

__version__ = "0.1.0"

# TensorFlow's default CPU allocator maps fresh pages for every large tensor, so each SGD step on VGG16's fc1
# (100M floats) spent more time in page faults than in arithmetic; its BFC pool reuses memory: about half the
# CPU time per step. It only takes effect before TensorFlow's first allocation, hence here, at package import;
# set TF_CPU_ALLOCATOR_USE_BFC=false to opt out.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
# ...and glibc keeps the buffers TensorFlow allocates outside that pool (see heroes.allocator).
_allocator.tune_malloc()
# TensorFlow's C++ INFO and WARNING lines (CUDA stubs, CPU feature guard, XLA compile notices) bury the training
# output a person reads; errors still show. HEROES_VERBOSE=1 (or --verbose) brings everything back.
if os.environ.get("HEROES_VERBOSE", "").strip() in ("", "0"):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
