import sys

from attack.cli import main

sys.exit(main())
