"""``python -m dmig`` is the same as the ``dmig`` command."""

import sys

from dmig.cli import main

sys.exit(main())
