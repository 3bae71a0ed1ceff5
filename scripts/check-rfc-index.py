#!/usr/bin/env python3
"""Every RFC cited in the code (`RFC 5321`) has a row in docs/rfc-status.tsv (STYLE §2)."""
import pathlib
import re
import sys

rows = pathlib.Path("docs/rfc-status.tsv").read_text().splitlines()[1:]
indexed = {r.split("\t")[0] for r in rows if r.strip()}
bad = [r for r in rows if r.strip() and len(r.split("\t")) != 3]
cited = {}
for path in pathlib.Path("crates").rglob("*.rs"):
    for m in re.finditer(r"RFC ?(\d{3,4})", path.read_text(errors="replace")):
        cited.setdefault(m.group(1), str(path))
missing = sorted(set(cited) - indexed, key=int)
for n in missing:
    print(f"RFC {n} is cited in {cited[n]} but missing from docs/rfc-status.tsv")
for r in bad:
    print(f"malformed row in docs/rfc-status.tsv: {r!r}")
if missing or bad:
    sys.exit(1)
print(f"rfc index: {len(cited)} cited RFCs, all indexed")
