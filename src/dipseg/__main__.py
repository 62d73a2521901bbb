"""``python -m dipseg`` runs the ``dipseg`` command."""

from .cli.main import main

main()
