import sys

from bench.scaleout.runner import main

sys.exit(main())
