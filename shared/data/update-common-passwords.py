"""Regenerates common-passwords.txt from the list Django's CommonPasswordValidator ships
(20,000 leaked passwords compiled by Royce Williams; Django is BSD-licensed), keeping the
entries long enough to pass the app's 10-character minimum, lower-cased, sorted, unique.

    python3 shared/data/update-common-passwords.py
"""

import gzip
import pathlib
import subprocess
import sys
import tempfile
import zipfile

DJANGO = "django==5.2.8"
MIN_LENGTH = 10
HERE = pathlib.Path(__file__).resolve().parent

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp, DJANGO],
        check=True,
        capture_output=True,
    )
    wheel = next(pathlib.Path(tmp).glob("django-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        raw = gzip.decompress(archive.read("django/contrib/auth/common-passwords.txt.gz"))

words = {line.strip().lower() for line in raw.decode().splitlines()}
kept = sorted(w for w in words if len(w) >= MIN_LENGTH)
(HERE / "common-passwords.txt").write_text("\n".join(kept) + "\n")
print(f"{len(kept)} passwords of at least {MIN_LENGTH} characters written")
