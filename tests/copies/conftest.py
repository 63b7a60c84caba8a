"""tests/copies: the student and self-paced copies, executed top to bottom, and nbgrader's
autograde of a chapter, solved and unsolved (test_autograde.py).

Run by ``make copies`` (and so by ``make test`` and CI), which sets ``COURSE_COPIES=1``.
Without it these modules are not even collected, so a plain ``pytest tests`` (``make
unit``) stays a quick run; with it nothing here can skip, and pytest fails when it
collects no test.
"""

import os

if os.environ.get("COURSE_COPIES") != "1":
    collect_ignore_glob = ["test_*.py"]
