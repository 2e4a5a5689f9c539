"""``python -m taskfiles`` is the ``task`` command."""

from taskfiles.cli import main

main()
