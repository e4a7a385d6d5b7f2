"""``python -m gmm_ppl``: the ``gmm-ppl`` command line."""

import sys

from gmm_ppl.app.cli import main

sys.exit(main())
