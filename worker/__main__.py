"""`python -P -m pyws.worker --boot-fd N`: how the root starts a worker."""

from __future__ import annotations

import sys

from pyws.worker.boot import main

sys.exit(main(sys.argv[1:]))
