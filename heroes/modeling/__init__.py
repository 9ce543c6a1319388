"""Backbones, weights, model building, feature cache, training, prediction and export."""

from heroes.progress import import_tensorflow_quietly

# Every module here imports Keras, hence TensorFlow: import it once, first, without its start-up noise.
import_tensorflow_quietly()
