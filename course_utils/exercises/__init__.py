"""Checks for the exercises in every chapter (``course_utils.exercises.check_*``).

Each ``check_*`` function takes the learner's function, runs it on small fixed cases
against the course's reference, and returns a :class:`CheckResult` that displays as one
line. A function that still raises ``NotImplementedError`` is reported as not yet done,
so student notebooks run top to bottom. One module per chapter: ``ch1.py``, ``ch2.py``...
"""

from .ch1 import *  # noqa: F403
from .ch2 import *  # noqa: F403
from .ch3 import *  # noqa: F403
from .ch4 import *  # noqa: F403
from .ch5 import *  # noqa: F403
from .ch6 import *  # noqa: F403
from .common import CheckResult

__all__ = ["CheckResult"]
