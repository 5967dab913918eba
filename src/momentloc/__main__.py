import sys

from momentloc.cli.main import main

sys.exit(main())
