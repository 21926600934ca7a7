"""The ``kairos`` command line: one module per sub-command, all on the same library."""
