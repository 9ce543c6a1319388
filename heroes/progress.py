"""What a person sees while work runs: progress bars (widgets in Jupyter, text headless) and quiet native logs."""

import contextlib
import os
import sys

# papermill executes kernels headless: a widget bar never reaches the terminal, so the pipeline sets this variable
# and forwards the kernel's stderr, where a text bar (updated every few seconds, to keep the saved notebook small) is
# what the person running `make reproduce` sees.
TEXT_ENV = "HEROES_PROGRESS"
VERBOSE_ENV = "HEROES_VERBOSE"  # 1: TensorFlow's INFO lines, kernel warnings and every repeated warning come back
QUIET_ENV = "HEROES_QUIET"  # 1: no progress bars (`--quiet`)


def verbose() -> bool:
    """Whether the person asked for everything (``--verbose`` or ``HEROES_VERBOSE=1``)."""
    return os.environ.get(VERBOSE_ENV, "").strip() not in ("", "0")


@contextlib.contextmanager
def native_stderr_silenced():
    """Within the block, file descriptor 2 goes to /dev/null (unless verbose).

    TensorFlow's C++ start-up lines (oneDNN, CUDA stubs, CPU features, absl's pre-init notice) are written straight
    to the descriptor, before any log level applies, so only silencing the descriptor hides them.
    """
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow, find its devices and run one op with the start-up noise hidden; Python-side INFO and
    WARNING logs (retracing notices) off unless verbose. Errors still raise and show."""
    from heroes import machine

    machine.prepare_process()  # the training entry: before TensorFlow's first allocation
    if "tensorflow" in sys.modules:
        return
    with native_stderr_silenced():
        import tensorflow

        tensorflow.config.list_physical_devices()
        tensorflow.constant(0) + 1  # oneDNN announces itself at the first op
    if not verbose():
        tensorflow.get_logger().setLevel("ERROR")


def quiet() -> bool:
    """Whether the person asked for no progress bars (``--quiet`` or ``HEROES_QUIET=1``)."""
    return os.environ.get(QUIET_ENV, "").strip() not in ("", "0")


def bar(iterable=None, **kwargs):
    """A tqdm bar over ``iterable``: tqdm.auto normally, plain text on stderr when ``HEROES_PROGRESS=text``, none
    (iteration only) when quiet."""
    if quiet():
        kwargs["disable"] = True
    if os.environ.get(TEXT_ENV) == "text":
        from tqdm.std import tqdm

        kwargs.setdefault("mininterval", 5.0)
        return tqdm(iterable, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


@contextlib.contextmanager
def text_bars():
    """Within the block, kernels started from this process (they inherit the environment) draw text bars."""
    previous = os.environ.get(TEXT_ENV)
    os.environ[TEXT_ENV] = "text"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(TEXT_ENV, None)
        else:
            os.environ[TEXT_ENV] = previous
