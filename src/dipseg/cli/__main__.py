"""``python -m dipseg.cli`` runs the ``dipseg`` command."""

from .main import main

main()
