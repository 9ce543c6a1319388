"""The one exception type the command line turns into a one-line message and exit code 2, and foreign errors' text."""

MESSAGE_LIMIT = 300  # characters of a foreign error's text kept in a one-line message


class UserError(ValueError):
    """Bad input from the user (missing folder, unknown backbone, too few images...).

    A ``ValueError`` so Python callers can catch it the usual way; ``heroes.cli``
    prints its message on one line and exits with status 2, never a traceback.
    """


def short_error(error, limit=MESSAGE_LIMIT) -> str:
    """``error``'s text on one line; a long one keeps its start and its end, where the cause usually is
    (TensorFlow and h5py put "No space left on device" last)."""
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) <= limit:
        return text
    half = (limit - 3) // 2
    return f"{text[:half]}...{text[-half:]}"  # ASCII: any locale prints it
