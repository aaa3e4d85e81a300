"""The access log's batch INSERT timed in SQLite alone (Python's sqlite3), the way an instance
under Spin runs it: batches of 22 entries (the mean at 32 connections), each on a connection
that has just read the schema and not yet prepared the INSERT (`fresh`, like most flushes: an
instance lends its flush whichever pooled connection is on top) or on one that has (`warm`).

    python3 log-insert-native.py COPY_OF_SEEDED_DB fresh|warm [BATCHES] [BATCH]

Environment: USERS (distinct user ids in the batches, default 1 as in the bench's
authenticate), TABLE (default log_entries; a table without indexes or triggers for the bare
figure). Prints the CPU time of a flush (this process's user and system time, checkpoints
included) and of an entry.
"""
import json
import os
import random
import sqlite3
import sys
import time
import uuid

COLUMNS = ("at, at_ms, level, component, event, request_id, user_id, method, route, status, "
           "duration_us, fields")
VALUES = ", ".join(f"value ->> {index}" for index in range(12))


def time_ordered_id(sequence):
    hex_ms = f"{int(time.time() * 1000):012x}"
    return f"{hex_ms[:8]}-{hex_ms[8:]}-7{sequence % 4096:03x}-8000-{uuid.uuid4().hex[:12]}"


def batch_json(size, users, sequence):
    rows = []
    for n in range(size):
        now = time.time()
        rows.append([time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
                     int(now * 1000), "info", "authenticate", "http.request",
                     time_ordered_id(sequence + n), random.choice(users), "GET",
                     "/auth/authenticate", 200, 150,
                     json.dumps({"path": "/auth/authenticate"})])
    return json.dumps(rows)


def connect(path):
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA temp_store = MEMORY")
    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return connection


def main():
    path, mode = sys.argv[1], sys.argv[2]
    batches = int(sys.argv[3]) if len(sys.argv) > 3 else 600
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 22
    table = os.environ.get("TABLE", "log_entries")
    users = [str(uuid.uuid4()) for _ in range(int(os.environ.get("USERS", "1")))]
    insert = f"INSERT INTO {table} ({COLUMNS}) SELECT {VALUES} FROM json_each(?)"
    payloads = [batch_json(size, users, n * size) for n in range(batches)]
    writer = connect(path)
    cpu = 0.0
    for payload in payloads:
        if mode == "fresh":
            writer.close()
            writer = connect(path)
        started = time.process_time()
        writer.execute(insert, (payload,))
        writer.execute("SELECT last_insert_rowid()").fetchone()
        cpu += time.process_time() - started
    per_flush = cpu / batches
    print(f"{mode} {table} users={len(users)} batch={size}: {per_flush * 1e3:.3f} ms a flush, "
          f"{per_flush / size * 1e6:.1f} us an entry")


if __name__ == "__main__":
    main()
