import sys

from tfnlp.cli import main

sys.exit(main())
