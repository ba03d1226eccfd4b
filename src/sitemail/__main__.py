"""``python -m sitemail``: the same as the ``sitemail`` command."""

from sitemail.cli import main

raise SystemExit(main())
