"""``python -m switchman`` is the ``switchman`` command."""

from __future__ import annotations

import sys

from switchman.cli.main import main

sys.exit(main())
