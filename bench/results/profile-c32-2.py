"""Per-request CPU from `bench/profile.sh` output: the rows of profile-c32-2.md.

Reads profile-c32-2-raw.txt (the four runs' output, each under "### <name>"). For each window,
the Spin process is the pid with samples in Spin's binary; its CPU per request is
2 cores x its share of all samples / that pass's requests per second. "A free guest" keeps the
scenario's host work and gives it the floor's Wasm time.
"""

import pathlib

RAW = pathlib.Path(__file__).with_name("profile-c32-2-raw.txt")
JIT = "[JIT] (the Wasm components)"


def window(block, rate):
    shares = {}
    for line in block.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith("%"):
            shares.setdefault(parts[1], {})[" ".join(parts[2:])] = float(parts[0][:-1])
    spin = next(pid for pid, codes in shares.items() if "spin" in codes)
    per_request = lambda share: 2 * share / 100 / rate * 1e6
    codes = shares[spin]
    return {
        "total": per_request(sum(codes.values())),
        "binary": per_request(codes.get("spin", 0)),
        "kernel": per_request(codes.get("[kernel.kallsyms]", 0)),
        "glibc": per_request(codes.get("libc.so.6", 0)),
        "wasm": per_request(codes.get(JIT, 0)),
        "idle": shares.get("0", {}).get("[kernel.kallsyms]", 0),
        "rate": rate,
    }


for run in RAW.read_text().split("### ")[1:]:
    rows = [line for line in run.splitlines() if line.startswith("| ")]
    floor_name, scenario_name = rows[0].split("|")[1].strip(), rows[-1].split("|")[1].strip()
    # The floor is sampled in its first pass, the scenario in its only one.
    rates = [float(rows[0].split("|")[2]), float(rows[-1].split("|")[2])]
    blocks = run.split("share of all samples")[1:]
    floor, scenario = (window(block, rate) for block, rate in zip(blocks, rates))
    free = scenario["total"] - (scenario["wasm"] - floor["wasm"])
    for name, w, note in [
        (floor_name + " (floor)", floor, ""),
        (scenario_name, scenario,
         f"{free:.0f} us: {100 * floor['total'] / free:.1f}% of {floor_name} "
         f"(the pass measured {100 * scenario['rate'] / floor['rate']:.1f}%)"),
    ]:
        print(f"| {name} | {w['rate']:,.0f} | {w['total']:.0f} us | {w['binary']:.0f} us | "
              f"{w['kernel']:.0f} us | {w['glibc']:.0f} us | {w['wasm']:.0f} us | "
              f"{w['idle']:.1f}% | {note} |")
