"""``python -m idemsync`` is the ``idemsync`` command."""

from idemsync.cli import main

raise SystemExit(main())
