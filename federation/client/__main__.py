"""``python -m federation.client ACTION …``: the same as ``barri client ACTION …``."""

import sys

from federation.client.cli import main

sys.exit(main())
