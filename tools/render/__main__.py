"""`python -m tools.render --stack dev --out DIR` (tools/render/cli.py)."""
import sys

from tools.render.cli import main

sys.exit(main())
