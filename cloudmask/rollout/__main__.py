"""`python -m cloudmask.rollout ...` runs the same command as `cloudmask rollout ...`."""

import sys

from cloudmask.rollout.cli import main

sys.exit(main())
