"""Training: the fit loop, the cached-feature path, the fine-tune path, callbacks, strategies and run folders."""

from heroes.progress import import_tensorflow_quietly

# Every module here imports Keras, hence TensorFlow: import it once, first, without its start-up noise.
import_tensorflow_quietly()
