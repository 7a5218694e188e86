"""``python -m chromasync``: the ``chromasync`` command, its extras checked first.

The same entry point as the console script: :func:`chromasync.extras.main`.
"""

import sys

from chromasync.extras import main

sys.exit(main())
