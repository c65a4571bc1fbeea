"""``python -m engine.distributed CONFIG``: the entry point torchrun runs (worker.py)."""

import sys

from engine.distributed.worker import main

sys.exit(main())
