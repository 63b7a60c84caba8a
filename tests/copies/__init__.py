"""Every student and self-paced copy, run top to bottom in fast mode (``make copies``)."""
