"""The one exception type for user mistakes.

The CLI prints ``srlab: error: <message>`` for it and exits with status 2 (or 1 where a batch reports it
for one input and goes on: see :mod:`srlab.cli.main`), without a traceback.
A message names the thing that is wrong (a file, a flag, a model) and says how to fix it.
"""


class SrlabError(Exception):
    """A user-facing error: bad input, a missing file, an incompatible checkpoint."""


class SrlabWarning(UserWarning):
    """Something the user should know that does not stop the work (only an animation's first frame is
    used, a 16-bit file read at 8 bits); the CLI prints it as one line, ``srlab: warning: ...``."""
