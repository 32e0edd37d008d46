"""``python -m edgellm``: the ``edgellm`` command."""
import sys

from edgellm.cli import main

sys.exit(main())
