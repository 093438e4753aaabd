"""``python -m fastnn``: see :mod:`fastnn.cli`."""
import sys

from .cli import main

sys.exit(main())
