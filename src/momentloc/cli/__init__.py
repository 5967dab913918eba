"""The ``momentloc`` command line."""
