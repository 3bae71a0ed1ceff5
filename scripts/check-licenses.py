#!/usr/bin/env python3
"""Checks every dependency's licence against deny.toml's allow-list (DESIGN §11).

A licence expression passes when, read as SPDX (OR = any branch, AND = all parts,
WITH = the whole exception id), it can be satisfied with allowed licences only.
"""
import json
import re
import subprocess
import sys
import tomllib

allowed = set(tomllib.load(open("deny.toml", "rb"))["licenses"]["allow"])


def satisfiable(expr: str) -> bool:
    expr = expr.replace("/", " OR ")  # old-style "MIT/Apache-2.0"
    tokens = re.findall(r"\(|\)|[A-Za-z0-9.+-]+(?: WITH [A-Za-z0-9.+-]+)?", expr)
    pos = 0

    def parse_or():
        nonlocal pos
        v = parse_and()
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            v = parse_and() or v
        return v

    def parse_and():
        nonlocal pos
        v = parse_atom()
        while pos < len(tokens) and tokens[pos] == "AND":
            pos += 1
            v = parse_atom() and v
        return v

    def parse_atom():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            v = parse_or()
            pos += 1  # ")"
            return v
        return tok in allowed or tok.split(" WITH ")[0] in allowed and " WITH " not in tok

    try:
        return parse_or()
    except IndexError:
        return False


meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--locked"]))
bad = []
for pkg in meta["packages"]:
    if pkg["source"] is None:  # workspace crates
        continue
    lic = pkg.get("license")
    if not lic or not satisfiable(lic):
        bad.append(f'{pkg["name"]} {pkg["version"]}: {lic!r}')
if bad:
    print("licence policy violated (see deny.toml):")
    print("\n".join("  " + b for b in bad))
    sys.exit(1)
print(f"licences: {len(meta['packages'])} packages checked, all allowed")
