"""Regenerates currencies.txt from the ISO 4217 table (list one, published 2026-01-01) as
shipped by the `iso4217` package on PyPI: one line per currency that has minor units (funds
and metals marked N.A. are left out), `CODE DIGITS Name`, sorted by code.

    python3 shared/data/update-currencies.py
"""

import pathlib
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
import zipfile

PACKAGE = "iso4217==1.16.20260101"
HERE = pathlib.Path(__file__).resolve().parent

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp, PACKAGE],
        check=True,
        capture_output=True,
    )
    wheel = next(pathlib.Path(tmp).glob("iso4217-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        table = ElementTree.fromstring(archive.read("iso4217/table.xml"))

currencies = {}
for entry in table.iter("CcyNtry"):
    code, digits, name = (entry.findtext(tag) for tag in ("Ccy", "CcyMnrUnts", "CcyNm"))
    if code and digits and digits.isdigit():
        currencies[code] = (int(digits), name.strip())
lines = [f"{code} {digits} {name}" for code, (digits, name) in sorted(currencies.items())]
(HERE / "currencies.txt").write_text("\n".join(lines) + "\n")
print(f"{len(lines)} currencies written")
