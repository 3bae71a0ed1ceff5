#!/usr/bin/env python3
"""Generates the corpus of bench/filter.sh: ham and spam-like RFC 5322 messages.

    filter-corpus.py OUT_DIR COUNT SEED

Writes OUT_DIR/ham/NNNN.eml and OUT_DIR/spam/NNNN.eml (about half each). Everything is
made up here from word lists; the same seed gives the same corpus.
"""

import base64
import random
import sys
from pathlib import Path

HAM_WORDS = (
    "meeting agenda project review quarterly report budget schedule team update "
    "release notes deadline draft proposal feedback minutes lunch tomorrow office "
    "customer invoice attached thanks regards please find document version change "
    "request server deploy test results weekend family photos dinner trip holiday "
    "question answer library kernel patch build pipeline documentation merge branch"
).split()
SPAM_WORDS = (
    "cheap pills viagra casino winner prize free money offer limited act now click "
    "here unsubscribe guaranteed income bitcoin investment loan credit approved "
    "discount pharmacy replica watches lottery urgent claim reward million dollars "
    "exclusive deal weight loss miracle risk-free no obligation bonus jackpot"
).split()
HAM_DOMAINS = ["example.org", "lists.example.net", "corp.example.com", "uni.example.edu"]
SPAM_DOMAINS = ["cheap-meds.example", "win-big.example", "promo-blast.example", "lucky.example"]


def sentence(rng, words, n):
    return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."


def paragraph(rng, words):
    return " ".join(sentence(rng, words, rng.randint(6, 16)) for _ in range(rng.randint(2, 6)))


def headers(rng, i, spam, subject, extra=""):
    dom = rng.choice(SPAM_DOMAINS if spam else HAM_DOMAINS)
    user = rng.choice(["alice", "bob", "carol", "dave", "news", "info", "sales"])
    return (
        f"Return-Path: <{user}@{dom}>\r\n"
        f"Received: from mail.{dom} (mail.{dom} [192.0.2.{rng.randint(1, 254)}])\r\n"
        f"\tby mx.example.com with ESMTP id {i:08x}; Mon, 1 Jan 2024 10:00:00 +0000\r\n"
        f"From: \"{user.title()}\" <{user}@{dom}>\r\n"
        f"To: alice@example.com\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Mon, 1 Jan 2024 10:{i % 60:02d}:00 +0000\r\n"
        f"Message-ID: <{i}.{rng.randint(1000, 9999)}@{dom}>\r\n"
        f"MIME-Version: 1.0\r\n{extra}"
    )


def html_of(rng, words, spam):
    links = "".join(
        f'<p><a href="http://www.{rng.choice(SPAM_DOMAINS if spam else HAM_DOMAINS)}/'
        f'{rng.randint(1, 999)}">{sentence(rng, words, 3)}</a></p>'
        for _ in range(rng.randint(1, 4))
    )
    return f"<html><body><p>{paragraph(rng, words)}</p>{links}</body></html>"


def message(rng, i, spam):
    words = SPAM_WORDS + HAM_WORDS[:8] if spam else HAM_WORDS
    subject = sentence(rng, words, rng.randint(2, 6)).rstrip(".")
    if spam and rng.random() < 0.3:
        subject = subject.upper() + " !!!"
    kind = rng.choice(["plain", "alternative", "attachment"])
    text = "\r\n\r\n".join(paragraph(rng, words) for _ in range(rng.randint(1, 5)))
    if spam:
        text += f"\r\n\r\nVisit http://{rng.choice(SPAM_DOMAINS)}/offer?id={rng.randint(1, 99999)} now!"
    if kind == "plain":
        return headers(rng, i, spam, subject, "Content-Type: text/plain; charset=utf-8\r\n") + "\r\n" + text + "\r\n"
    if kind == "alternative":
        return (
            headers(rng, i, spam, subject, 'Content-Type: multipart/alternative; boundary="alt"\r\n')
            + "\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + text
            + "\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            + html_of(rng, words, spam).replace("=", "=3D")
            + "\r\n--alt--\r\n"
        )
    payload = bytes(rng.randrange(256) for _ in range(rng.randint(2_000, 20_000)))
    b64 = base64.encodebytes(payload).decode().replace("\n", "\r\n")
    name = rng.choice(["report.pdf", "photo.jpg", "invoice.pdf", "data.bin"])
    return (
        headers(rng, i, spam, subject, 'Content-Type: multipart/mixed; boundary="mix"\r\n')
        + "\r\n--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + text
        + f'\r\n--mix\r\nContent-Type: application/octet-stream; name="{name}"\r\n'
        + f'Content-Disposition: attachment; filename="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + b64
        + "--mix--\r\n"
    )


def main():
    out, count, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    for sub in ("ham", "spam"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        spam = i % 2 == 1
        path = out / ("spam" if spam else "ham") / f"{i:04d}.eml"
        path.write_bytes(message(rng, i, spam).encode())


if __name__ == "__main__":
    main()
