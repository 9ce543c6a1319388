"""A model saved by the flat-layout code (commit c45efe9, heroes.models.save_model) loads and predicts the same."""

from pathlib import Path

import numpy

from heroes.serving import predict
from heroes.models import saving

DATA = Path(__file__).parent / "data"


def test_model_saved_before_the_package_layout_loads_and_predicts_the_same():
    # Made once with the pre-move code: a tiny registered backbone ("tiny_premove", VGG caffe preprocessing, one
    # conv + BatchNorm), 3 classes, 32 px; the reference holds its inputs and probabilities at save time.
    model, class_names = saving.load_model(DATA / "pre_move_model.keras")
    reference = numpy.load(DATA / "pre_move_reference.npz")
    assert class_names == ["Batman", "Not a hero", "Wonder Woman"]
    numpy.testing.assert_allclose(model.predict(reference["images"], verbose=0), reference["probabilities"],
                                  rtol=1e-5, atol=1e-6)
    assert predict.input_size(model) == 32
