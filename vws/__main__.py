"""``python -m vws``: the same as the ``vws`` command."""

import sys

from vws.cli import main

sys.exit(main())
