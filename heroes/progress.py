"""Progress bars for long notebook steps: widgets in Jupyter, text on stderr when `make reproduce` runs headless."""

import contextlib
import os

# papermill executes kernels headless: a widget bar never reaches the terminal, so the pipeline sets this variable
# and forwards the kernel's stderr, where a text bar (updated every few seconds, to keep the saved notebook small) is
# what the person running `make reproduce` sees.
TEXT_ENV = "HEROES_PROGRESS"


def bar(iterable=None, **kwargs):
    """A tqdm bar over ``iterable``: tqdm.auto normally, plain text on stderr when ``HEROES_PROGRESS=text``."""
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
