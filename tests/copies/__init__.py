"""Every student and self-paced copy, run top to bottom in fast mode, and nbgrader's autograde
of a chapter (``make copies``)."""
