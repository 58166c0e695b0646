"""``python -m ocrstream`` runs the command line."""

from __future__ import annotations

import sys

from ocrstream.cli import main

sys.exit(main())
