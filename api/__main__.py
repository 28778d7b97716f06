import sys

from api.serve import main

sys.exit(main())
