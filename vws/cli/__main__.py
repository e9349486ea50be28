import sys

from vws.cli import main

sys.exit(main())
