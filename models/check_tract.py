#!/usr/bin/env python3
"""Cross-check the exported model and the reference files with tract 0.23.

tract is the inference engine the Rust component uses (tract-onnx 0.23, there
compiled to WebAssembly); this uses its Python bindings (same native engine)
to load ames-similarity.onnx the way the component does (input fact
f32 [N, F], optimised), then recomputes every score in reference-scores.json
and every top-5 in reference-search.json with `ames_encoding.encode`.
Exits non-zero on any mismatch beyond the files' tolerance.
"""

import json
import math
import os
import sys

import numpy as np
import tract

from ames_encoding import encode, encode_many

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name):
    with open(os.path.join(HERE, name)) as fh:
        return json.load(fh)


def main():
    meta = load("ames-similarity.json")
    model = tract.onnx().load(os.path.join(HERE, meta["onnx"]))
    model.set_input_fact(0, f"N,{meta['input']['width']},f32")
    plan = model.into_model().into_runnable()

    def embed(rows):
        return plan.run([np.ascontiguousarray(rows, dtype=np.float32)])[0].to_numpy()

    a, b = meta["score"]["a"], meta["score"]["b"]

    def score(ea, eb):
        cos = float(np.dot(ea.astype(np.float64), eb.astype(np.float64)))
        return 1.0 / (1.0 + math.exp(-(a + b * cos)))

    ref = load("reference-scores.json")
    worst = 0.0
    for i, case in enumerate(ref["cases"]):
        ea = embed(encode(case["a"], meta)[None, :])[0]
        eb = embed(encode(case["b"], meta)[None, :])[0]
        worst = max(worst, abs(score(ea, eb) - case["score"]))
    ok = worst <= ref["tolerance"]
    print(f"tract {tract.version()}: {len(ref['cases'])} reference scores, "
          f"max |diff| {worst:.2e} (tolerance {ref['tolerance']})")

    search = load("reference-search.json")
    E = embed(encode_many(search["listings"], meta))
    for q in search["queries"]:
        eq = embed(encode(q["property"], meta)[None, :])[0]
        s = np.array([score(eq, e) for e in E])
        top = [int(x) for x in np.lexsort((np.arange(len(s)), -s))[:5]]
        same = top == q["top5"]
        ok &= same
        print(f"  search top5 {top} {'matches' if same else 'DIFFERS from ' + str(q['top5'])}")
    print("tract parity:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
