"""`python -m oneshot_lab` runs the `oneshot-lab` command."""

from .cli import main

raise SystemExit(main())
