"""``python -m srlab`` (also what ``torchrun -m srlab`` runs) is the ``srlab`` command."""

from srlab.cli.main import main

raise SystemExit(main())
