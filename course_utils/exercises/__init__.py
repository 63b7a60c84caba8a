"""Checks for the exercises in every chapter (``course_utils.exercises.check_*``).

Each ``check_*`` function takes the learner's function, runs it on small fixed cases
against the course's reference, and returns a :class:`CheckResult` that displays as one
line. A function that still raises ``NotImplementedError`` is reported as not yet done,
so student notebooks run top to bottom. One module per chapter: ``ch1.py``, ``ch2.py``...

A demo cell that calls a learner's function takes it from :func:`yours_or_reference`:
the learner's own once it passes its check, the course's reference (``reference_*`` here,
or the package function) with a one-line ``[USING REFERENCE]`` note until then.
"""

from .ch1 import *  # noqa: F403
from .ch2 import *  # noqa: F403
from .ch3 import *  # noqa: F403
from .ch4 import *  # noqa: F403
from .ch5 import *  # noqa: F403
from .ch6 import *  # noqa: F403
from .common import CheckResult, Choice, yours_or_reference

__all__ = ["CheckResult", "Choice", "yours_or_reference"]
