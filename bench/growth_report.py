#!/usr/bin/env python3
"""Cost-growth report of bench/run.sh (issue 7 §3, issue 4 §8c).

    growth_report.py RESULTS_DIR OUT_PREFIX

Reads growth-keel.json / growth-peer.json (keel-bench growth) and conns-keel-N.json /
conns-peer-N.json (keel-bench imap --idle-hold N) from RESULTS_DIR, prints a Markdown
section to stdout and writes OUT_PREFIX-mailbox.svg and OUT_PREFIX-conns.svg: cost
against size on log-log axes, Keel solid, the peer dashed.
"""
import glob
import json
import math
import os
import re
import sys

OPS = [
    ("select_ms", "SELECT", "#1f6feb"),
    ("fetch_flags_ms", "UID FETCH 1:* (FLAGS)", "#d1242f"),
    ("search_header_ms", "SEARCH HEADER Subject", "#1a7f37"),
    ("search_text_ms", "SEARCH TEXT", "#9a6700"),
]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def nice_ticks(lo, hi):
    """Powers of ten (and 2, 5 between them when the range is short) within [lo, hi]."""
    ticks = []
    e = math.floor(math.log10(lo))
    while 10**e <= hi * 1.0001:
        for m in ((1, 2, 5) if math.log10(hi / lo) < 3 else (1,)):
            v = m * 10**e
            if lo * 0.9999 <= v <= hi * 1.0001:
                ticks.append(v)
        e += 1
    return ticks


def fmt(v):
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def svg_chart(title, xlabel, ylabel, series, out):
    """series: list of (label, colour, dashed, [(x, y)...]); log-log axes."""
    pts = [p for s in series for p in s[3] if p[0] > 0 and p[1] > 0]
    if not pts:
        return False
    W, H, L, R, T, B = 800, 420, 70, 270, 40, 50
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = 10 ** math.floor(math.log10(min(xs))), 10 ** math.ceil(math.log10(max(xs)))
    y0, y1 = 10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys)))
    if x1 == x0:
        x1 *= 10
    if y1 == y0:
        y1 *= 10

    def px(x):
        return L + (math.log10(x) - math.log10(x0)) / (math.log10(x1) - math.log10(x0)) * (W - L - R)

    def py(y):
        return H - B - (math.log10(y) - math.log10(y0)) / (math.log10(y1) - math.log10(y0)) * (H - T - B)

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="24" font-size="15" font-weight="bold">{esc(title)}</text>']
    for t in nice_ticks(x0, x1):
        x = px(t)
        o.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{H - B}" stroke="#ddd"/>')
        o.append(f'<text x="{x:.1f}" y="{H - B + 16}" text-anchor="middle">{fmt(t)}</text>')
    for t in nice_ticks(y0, y1):
        y = py(t)
        o.append(f'<line x1="{L}" y1="{y:.1f}" x2="{W - R}" y2="{y:.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
    o.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" stroke="#444"/>')
    o.append(f'<text x="{(L + W - R) / 2:.0f}" y="{H - 12}" text-anchor="middle">{esc(xlabel)}</text>')
    o.append(f'<text transform="translate(16 {(T + H - B) / 2:.0f}) rotate(-90)" '
             f'text-anchor="middle">{esc(ylabel)}</text>')
    ly = T + 10
    for label, colour, dashed, points in series:
        points = [p for p in points if p[0] > 0 and p[1] > 0]
        if not points:
            continue
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        o.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for x, y in points:
            o.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        o.append(f'<line x1="{W - R + 12}" y1="{ly}" x2="{W - R + 40}" y2="{ly}" '
                 f'stroke="{colour}" stroke-width="2"{dash}/>')
        o.append(f'<text x="{W - R + 46}" y="{ly + 4}">{esc(label)}</text>')
        ly += 18
    o.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(o) + "\n")
    return True


def main():
    rdir, prefix = sys.argv[1], sys.argv[2]
    lines = []
    keel, peer = load(os.path.join(rdir, "growth-keel.json")), load(os.path.join(rdir, "growth-peer.json"))
    if keel:
        kp = {p["messages"]: p for p in keel["points"]}
        pp = {p["messages"]: p for p in (peer or {"points": []})["points"]}
        lines += ["## Cost growth: one mailbox of N messages (median of repeats, ms)", "",
                  "| Messages | Operation | Keel/Dovecot | Keel ms | Dovecot ms |",
                  "|---:|---|---:|---:|---:|"]
        for n in sorted(kp):
            for key, name, _ in OPS:
                k = kp[n][key]
                p = pp.get(n, {}).get(key)
                ratio = f"**{k / p:.2f}**" if p else ""
                lines.append(f"| {n} | {name} | {ratio} | {k:.2f} | {p:.2f} |" if p is not None
                             else f"| {n} | {name} | | {k:.2f} | |")
        sizes = sorted(kp)
        if len(sizes) >= 2:
            lo, hi = kp[sizes[0]], kp[sizes[-1]]
            growth = ", ".join(f"{name} ×{hi[key] / lo[key]:.1f}" if lo[key] > 0 else f"{name} n/a"
                               for key, name, _ in OPS)
            lines += ["", f"Keel growth from {sizes[0]} to {sizes[-1]} messages "
                          f"(×{sizes[-1] / sizes[0]:g} size): {growth}."]
        series = []
        for key, name, colour in OPS:
            series.append((f"Keel {name}", colour, False, [(n, kp[n][key]) for n in sorted(kp)]))
            if pp:
                series.append((f"Dovecot {name}", colour, True, [(n, pp[n][key]) for n in sorted(pp)]))
        if svg_chart("IMAP cost against mailbox size", "messages in the mailbox",
                     "milliseconds (median)", series, prefix + "-mailbox.svg"):
            lines += ["", f"Chart: `{os.path.basename(prefix)}-mailbox.svg`."]
        lines.append("")

    conns = {}
    for path in glob.glob(os.path.join(rdir, "conns-*-*.json")):
        m = re.search(r"conns-(keel|peer)-(\d+)\.json$", path)
        d = load(path)
        if m and d:
            conns.setdefault(int(m.group(2)), {})[m.group(1)] = d
    if conns:
        lines += ["## Cost growth: idle IMAP connections (memory per connection, kB)", "",
                  "| Connections | Keel RSS/conn | Dovecot RSS/conn | Dovecot PSS/conn | Keel/Dovecot (RSS) |",
                  "|---:|---:|---:|---:|---:|"]
        for n in sorted(conns):
            k, p = conns[n].get("keel"), conns[n].get("peer")
            kr = k.get("rss_per_conn_kb") if k else None
            pr = p.get("rss_per_conn_kb") if p else None
            ps = p.get("pss_per_conn_kb") if p else None
            ratio = f"**{kr / pr:.3f}**" if kr is not None and kr > 0 and pr else ""
            def cell(v):
                if not isinstance(v, (int, float)):
                    return "not run"
                # RSS moves by a few hundred kB on its own; a tiny or negative
                # difference spread over few connections is noise.
                return f"{v:.1f}" if v > 0 else "≈0 (noise)"
            lines.append(f"| {n} | {cell(kr)} | {cell(pr)} | {cell(ps)} | {ratio} |")
        series = [
            ("Keel RSS/conn", "#1f6feb", False,
             [(n, conns[n]["keel"]["rss_per_conn_kb"]) for n in sorted(conns)
              if "keel" in conns[n] and conns[n]["keel"]["rss_per_conn_kb"] > 0]),
            ("Dovecot RSS/conn", "#d1242f", True,
             [(n, conns[n]["peer"]["rss_per_conn_kb"]) for n in sorted(conns) if "peer" in conns[n]]),
            ("Dovecot PSS/conn", "#9a6700", True,
             [(n, conns[n]["peer"].get("pss_per_conn_kb", 0)) for n in sorted(conns) if "peer" in conns[n]]),
        ]
        if svg_chart("Memory per idle IMAP connection", "connections in IDLE",
                     "kB per connection", series, prefix + "-conns.svg"):
            lines += ["", f"Chart: `{os.path.basename(prefix)}-conns.svg`."]
        lines.append("")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
