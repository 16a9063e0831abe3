"""Sub-commands of ``geoanomaly``; each module is one command (see :mod:`core.cli`)."""
