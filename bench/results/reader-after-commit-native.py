"""What another connection's commit costs a reader, in SQLite alone (Python's sqlite3): a
long-lived connection reads catalog items by id, one statement each, as `catalog get` does on
an instance's pooled connection, while a second connection commits a 22-entry batch of the
access log every K reads (under Spin at 32 connections, a flush commits every few reads of
each connection). Only the reads are timed (CPU time).

    python3 reader-after-commit-native.py COPY_OF_SEEDED_DB none|same|other [READS] [K]

`same` commits into the same database file (as the app does), `other` into a database file of
its own beside it (created with the log's table), `none` commits nothing. Prints the CPU time
of a read.
"""
import json
import random
import sqlite3
import sys
import time

COLUMNS = ("at, at_ms, level, component, event, request_id, user_id, method, route, status, "
           "duration_us, fields")
VALUES = ", ".join(f"value ->> {index}" for index in range(12))


def connect(path):
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


def batch(size=22):
    now = time.time()
    row = [time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)), int(now * 1000), "info",
           "catalog", "http.request", "r", None, "GET", "/catalog/items/{id}", 200, 150,
           json.dumps({"path": "/catalog/items/x"})]
    return json.dumps([row] * size)


def main():
    path, mode = sys.argv[1], sys.argv[2]
    reads = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    every = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    reader = connect(path)
    ids = [row[0] for row in reader.execute("SELECT id FROM catalog_items")]
    writer = None
    if mode == "same":
        writer = connect(path)
    elif mode == "other":
        other = path + ".log.db"
        writer = connect(other)
        schema = reader.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'log_entries'").fetchone()[0]
        writer.execute(schema.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
    insert = f"INSERT INTO log_entries ({COLUMNS}) SELECT {VALUES} FROM json_each(?)"
    payload = batch()
    query = "SELECT * FROM catalog_items WHERE id = ?"
    cpu = 0.0
    for n in range(reads):
        if writer is not None and n % every == 0:
            writer.execute(insert, (payload,))
        item = random.choice(ids)
        start = time.process_time()
        reader.execute(query, (item,)).fetchall()
        cpu += time.process_time() - start
    print(f"{mode}: {reads} reads, a commit every {every}: {cpu / reads * 1e6:.1f} us a read")


main()
