import sys

from genfeed_pipeline.cli import main

sys.exit(main())
