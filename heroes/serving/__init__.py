"""Serving a trained run: predict, export (SavedModel, TFLite, ONNX), the demo page, and the Run object."""

from heroes.progress import import_tensorflow_quietly

# Every module here imports Keras, hence TensorFlow: import it once, first, without its start-up noise.
import_tensorflow_quietly()
