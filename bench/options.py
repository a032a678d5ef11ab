"""The options every bench takes, spelt one way."""
from __future__ import annotations

import argparse
from pathlib import Path

from lab import session

RESULTS = Path(__file__).resolve().parent / "results"


def parser(doc: str, profile: str, work: str, show_several: bool = False) -> argparse.ArgumentParser:
    """--profile, --substrate, --out (where results go), --work (scratch) and --show (print
    earlier results as a table, run nothing); a bench adds its own."""
    options = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    options.add_argument("--profile", choices=sorted(session.PROFILES), default=profile)
    options.add_argument("--substrate", choices=session.SUBSTRATES,
                         default=session.substrate_from_environment())
    options.add_argument("--out", type=Path, default=RESULTS)
    options.add_argument("--work", type=Path, default=Path(work))
    options.add_argument("--show", type=Path, metavar="JSON", nargs="+" if show_several else None,
                         help="print earlier results as a Markdown table; run nothing")
    return options
