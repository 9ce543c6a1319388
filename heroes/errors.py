"""The one exception type the command line turns into a one-line message and exit code 2."""




class UserError(ValueError):
    """Bad input from the user (missing folder, unknown backbone, too few images...).

    A ``ValueError`` so Python callers can catch it the usual way; ``heroes.cli``
    prints its message on one line and exits with status 2, never a traceback.
    """
