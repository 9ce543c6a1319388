"""heroes: superhero image classification with transfer learning, VGG vs ResNet, done honestly.

The Python API, in three lines (each function raises ``heroes.errors.UserError`` with the CLI's one-line messages)::

    import heroes
    run = heroes.train("My Photos", out="models/my-photos", epochs=8)   # scan, clean, split, train, report
    run.metrics["test_accuracy"], run.predict(["photo.jpg"])             # then run.confusion_matrix(), ...

``heroes.load_run(path)`` opens a finished run again; ``heroes.scan(folder)`` and ``heroes.clean(manifest)`` are the
data steps alone; ``heroes.review(flags, manifest)`` shows the flagged pictures in Jupyter to keep, drop or
relabel with a click. Importing heroes changes nothing global: TensorFlow's process settings are made when training
or the CLI starts (``heroes.machine.prepare_process``).
"""

__version__ = "0.1.0"


def train(data_dir, out, *, force: bool = False, progress: bool = True, lr=None, **options):
    """Train on a folder of class folders (as ``python -m heroes train``) and return the finished ``Run``.

    ``options`` are the fields of ``heroes.training.spec.TrainSpec`` (the CLI's options): recipe, backbone, policy,
    weights, epochs, image_size, seed, split, learning_rate (or ``lr``), batch_size, label_smoothing, augment, tta,
    cache_dir. Every value is checked, and the weights chosen, before any image is read.
    """
    from heroes.serving.trained import Run
    from heroes.training.folder import train_folder
    from heroes.training.spec import TrainSpec

    if lr is not None:
        options["learning_rate"] = lr
    resolved = TrainSpec(str(data_dir), **options).resolve()
    return Run(train_folder(resolved, out, force=force, progress=progress)["run_dir"])


def load_run(run_dir):
    """A finished run folder (what ``train`` wrote) as a ``Run``."""
    from heroes.serving.trained import Run

    return Run(run_dir)


def scan(data_dir, progress: bool = True):
    """One row per file under ``data_dir`` (path, label, status, reason, sha256, size, format); reads only."""
    from pathlib import Path

    from heroes.data.scan import scan as scan_folder

    return scan_folder(Path(data_dir), progress=progress)


def clean(manifest, progress: bool = True):
    """Flags of a scanned manifest: ``.flags`` (one row per flagged file), ``.manifest`` (cleaned), ``.pending``."""
    from heroes.cleaning.flags import clean as clean_manifest

    return clean_manifest(manifest, progress=progress)


def review(flags, manifest=None, decisions=None, thumb: int = 112):
    """Flagged pictures (``clean(...).flags`` or a flags CSV) with keep / drop / relabel buttons for Jupyter; each
    click appends to ``decisions`` (default data/review/decisions.csv), which the next ``clean`` replays."""
    from heroes.cleaning.review_widget import review as review_widget

    return review_widget(flags, manifest, decisions, thumb)
