"""Models: the backbone registry, create_model, EfficientNet-Lite and its weights, graph surgery, saving."""

from heroes.progress import import_tensorflow_quietly

# Every module here imports Keras, hence TensorFlow: import it once, first, without its start-up noise.
import_tensorflow_quietly()
