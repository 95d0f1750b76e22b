"""``python -m ttt3r``: the ``ttt3r`` command."""

import sys

from .cli import main

sys.exit(main())
