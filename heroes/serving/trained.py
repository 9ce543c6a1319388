"""A finished `heroes train` run as a Python object: its metrics, predictions and model, and what a notebook
asks of them (predict, confusion matrix, learning curves, top losses)."""

from functools import cached_property
from pathlib import Path

import pandas

from heroes.errors import UserError
from heroes.training import runs


class Run:
    """A run folder written by ``heroes.train`` or ``python -m heroes train``; the model loads on first use."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        runs.read_run(self.run_dir)  # a one-line UserError unless every file of a finished run is there
        if not (self.run_dir / runs.MODEL).is_file():
            raise UserError(f"{self.run_dir} has no {runs.MODEL}: not a finished `heroes train` run")

    def __repr__(self) -> str:
        metrics = self.metrics
        return (f"Run({str(self.run_dir)!r}: {metrics['backbone']}, test accuracy {metrics['test_accuracy']:.3f} on "
                f"{metrics['test_n']} images)")

    def _repr_markdown_(self) -> str:
        from heroes.reporting.run_report import headline

        return f"**{self.metrics['backbone']}** in `{self.run_dir}`: {headline(self.metrics)}"

    @cached_property
    def metrics(self) -> dict:
        """metrics.json: test accuracy and n, backbone, weights, classes, the recipe and every option it used."""
        return runs.read_metrics(self.run_dir).to_json()

    @cached_property
    def predictions(self) -> pandas.DataFrame:
        """The test set in a fixed order: path, sha256, label, predicted, correct, prob_<class>..."""
        return pandas.read_csv(self.run_dir / runs.PREDICTIONS, keep_default_na=False)

    @cached_property
    def history(self) -> pandas.DataFrame:
        """One row per epoch: loss, accuracy, val_loss, val_accuracy, seconds."""
        return pandas.read_csv(self.run_dir / runs.HISTORY)

    @cached_property
    def _loaded(self) -> tuple:
        from heroes.serving import predict

        return predict.load_predictor(self.run_dir)

    @property
    def model(self):
        """The trained Keras model: raw 0-255 RGB in, class probabilities out."""
        return self._loaded[0]

    @property
    def class_names(self) -> list:
        return list(self._loaded[1])

    def predict(self, paths) -> pandas.DataFrame:
        """Probabilities for image files (one path or a list), decoded and resized exactly as in training."""
        from heroes.serving import predict

        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        size = predict.input_size(self.model)
        return predict.predict_images(self.model, self.class_names, paths, size)

    def confusion_matrix(self) -> pandas.DataFrame:
        """Test-set counts: one row per true class, one column per predicted class."""
        names = list(self.metrics["class_names"])
        table = pandas.crosstab(pandas.Categorical(self.predictions["label"], names),
                                pandas.Categorical(self.predictions["predicted"], names), dropna=False)
        return table.rename_axis(index="true", columns="predicted")

    def top_losses(self, k: int = 9) -> pandas.DataFrame:
        """The ``k`` test images with the highest -log p(true class), highest first."""
        from heroes.evaluation.explain import top_losses

        return top_losses(self.predictions, k)

    def plot_learning_curves(self):
        """The learning-curves figure (matplotlib ``Figure``; a notebook shows it when it is a cell's value)."""
        return _figure("learning-curves.png", self.run_dir)

    def plot_top_losses(self):
        """The grid of the worst test errors (image, true class, predicted class and its probability)."""
        return _figure("worst-errors.png", self.run_dir)


def _figure(name: str, run_dir: Path):
    """A run's saved PNG as a matplotlib figure, so notebooks show exactly what summary.md shows."""
    import matplotlib.image
    from matplotlib.figure import Figure

    image = matplotlib.image.imread(run_dir / name)
    height, width = image.shape[:2]
    figure = Figure(figsize=(width / 100, height / 100), dpi=100)
    axis = figure.add_axes((0, 0, 1, 1))
    axis.imshow(image)
    axis.set_axis_off()
    return figure
