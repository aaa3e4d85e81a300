#!/usr/bin/env python3
"""Train, calibrate, evaluate and export the ames-similarity model.

Reads models/data/ames.csv (modeldata::ames exported by reproduce.sh) and
writes, next to this file:
  ames-similarity.onnx, ames-similarity.json, metrics.json,
  reference-scores.json, reference-search.json

Deterministic: fixed seed, single-threaded BLAS, full-batch training.
Run through models/reproduce.sh.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import autograd.numpy as anp  # noqa: E402
import numpy as np  # noqa: E402
from autograd import value_and_grad  # noqa: E402

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from ames_encoding import (  # noqa: E402
    CATEGORY_FEATURES, NUMERIC_FEATURES, build_feature_metadata, encode,
    encode_many, input_width, row_to_property,
)

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "ames-similarity"
VERSION = "1.0.0"
SEED = 20240611

# ---- label definition (see README.md) ------------------------------------
ARMS_LENGTH_SALES = ("Normal", "Partial")
RADIUS_KM = 1.0
PRICE_BAND = math.log(1.10)          # |adjusted log price difference|
SEGMENT = {"OneFam": "detached", "TwnhsE": "attached", "Twnhs": "attached",
           "Duplex": "two_family", "TwoFmCon": "two_family"}
SPLIT = (0.70, 0.15, 0.15)            # train / validation / test, by house
K = 10


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=os.path.join(HERE, "data", "ames.csv"))
    p.add_argument("--out", default=HERE)
    p.add_argument("--hidden", default="64,64")
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--loss", default="supcon", choices=["supcon", "bce"])
    p.add_argument("--tau", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--wd", type=float, default=1e-2)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--exclude", default="", help="comma list (experiments)")
    p.add_argument("--quick", action="store_true",
                   help="train + validate only, write nothing")
    return p.parse_args()


# ---- data -------------------------------------------------------------------
def load_rows(path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    kept = [r for r in rows if r["Sale_Condition"] in ARMS_LENGTH_SALES]
    return rows, kept


def split_by_house(n, rng):
    perm = rng.permutation(n)
    n_tr = int(round(SPLIT[0] * n))
    n_va = int(round(SPLIT[1] * n))
    return (np.sort(perm[:n_tr]), np.sort(perm[n_tr:n_tr + n_va]),
            np.sort(perm[n_tr + n_va:]))


def year_index(rows, train_idx):
    """Hedonic log-price year index (base 2006) fitted on training houses.

    OLS of log(Sale_Price) on year-of-sale dummies plus neighbourhood
    dummies and a few structural controls, so that the year effect is not
    confounded by which houses happened to sell in which year.
    """
    years = sorted({int(r["Year_Sold"]) for r in rows})
    nbs = sorted({r["Neighborhood"] for r in rows})
    bts = sorted({r["Bldg_Type"] for r in rows})

    def design(r):
        x = [1.0]
        x += [1.0 if int(r["Year_Sold"]) == y else 0.0 for y in years[1:]]
        x += [1.0 if r["Neighborhood"] == nb else 0.0 for nb in nbs[1:]]
        x += [1.0 if r["Bldg_Type"] == b else 0.0 for b in bts[1:]]
        x += [math.log(float(r["Gr_Liv_Area"])), math.log(float(r["Lot_Area"])),
              float(r["Total_Bsmt_SF"]) / 1000.0,
              (float(r["Year_Built"]) - 1970) / 10.0,
              (float(r["Year_Remod_Add"]) - 1985) / 10.0,
              float(r["Garage_Cars"]), float(r["Full_Bath"]),
              float(r["Fireplaces"])]
        return x

    X = np.array([design(rows[i]) for i in train_idx])
    y = np.log([float(rows[i]["Sale_Price"]) for i in train_idx])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    idx = {years[0]: 0.0}
    for k, yr in enumerate(years[1:]):
        idx[yr] = float(coef[1 + k])
    return idx


def haversine_km(lat, lon):
    lat = np.radians(lat)
    lon = np.radians(lon)
    dlat = lat[:, None] - lat[None, :]
    dlon = lon[:, None] - lon[None, :]
    a = (np.sin(dlat / 2) ** 2
         + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.sin(dlon / 2) ** 2)
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def comparable_matrix(rows, idx, yidx):
    """Boolean [n, n] matrix: True where the two houses are comparables."""
    sub = [rows[i] for i in idx]
    nb = np.array([r["Neighborhood"] for r in sub])
    seg = np.array([SEGMENT[r["Bldg_Type"]] for r in sub])
    lat = np.array([float(r["Latitude"]) for r in sub])
    lon = np.array([float(r["Longitude"]) for r in sub])
    adj = np.array([math.log(float(r["Sale_Price"])) - yidx[int(r["Year_Sold"])]
                    for r in sub])
    same_market = (nb[:, None] == nb[None, :]) | (haversine_km(lat, lon) <= RADIUS_KM)
    same_segment = seg[:, None] == seg[None, :]
    same_price = np.abs(adj[:, None] - adj[None, :]) <= PRICE_BAND
    lab = same_market & same_segment & same_price
    np.fill_diagonal(lab, False)
    return lab


# ---- metrics ----------------------------------------------------------------
def retrieval_metrics(S, L, k=K):
    """Per-query recall@k / precision@k / nDCG@k (binary relevance).

    S: [n, n] similarity (higher = more similar), L: [n, n] bool labels.
    Each house queries all others in the pool (itself excluded); ties are
    broken by lower index. Queries without any comparable are skipped.
    """
    n = S.shape[0]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    rec, prec, ndcg = [], [], []
    ar = np.arange(n)
    for i in range(n):
        npos = int(L[i].sum())
        if npos == 0:
            continue
        s = S[i].astype(np.float64).copy()
        s[i] = -np.inf
        order = np.lexsort((ar, -s))
        order = order[order != i][:k]
        rel = L[i, order].astype(np.float64)
        rec.append(rel.sum() / npos)
        prec.append(rel.sum() / k)
        ndcg.append((rel * disc).sum() / disc[:min(npos, k)].sum())
    return {f"recall@{k}": float(np.mean(rec)), f"precision@{k}": float(np.mean(prec)),
            f"ndcg@{k}": float(np.mean(ndcg)), "queries": len(rec)}


def pair_auc(scores, labels):
    """ROC AUC (Mann-Whitney, ties averaged)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2.0 + 1
        i = j + 1
    r = np.empty(len(s))
    r[order] = ranks
    npos = labels.sum()
    nneg = len(labels) - npos
    return float((r[labels].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def upper(M):
    iu = np.triu_indices(M.shape[0], 1)
    return M[iu]


def all_metrics(S, L):
    m = retrieval_metrics(S, L)
    m["pair_auc"] = pair_auc(upper(S), upper(L))
    return m


# ---- model ------------------------------------------------------------------
def init_params(sizes, rng):
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        lim = math.sqrt(6.0 / (fan_in + fan_out))
        params.append((rng.uniform(-lim, lim, (fan_in, fan_out)), np.zeros(fan_out)))
    return params


def forward(params, Z):
    """Z: standardised inputs. Returns L2-normalised embeddings."""
    h = Z
    for W, b in params[:-1]:
        h = anp.tanh(anp.dot(h, W) + b)
    W, b = params[-1]
    z = anp.dot(h, W) + b
    return z / anp.sqrt(anp.maximum(anp.sum(z * z, axis=1, keepdims=True), 1e-12))


def make_loss(Z, L, kind, tau, wd):
    n = Z.shape[0]
    pos = L.astype(np.float64)
    has_pos = pos.sum(1) > 0
    npos = np.maximum(pos.sum(1), 1)
    eye = np.eye(n)
    neg = (1 - pos) * (1 - eye)
    wpos = 0.5 / pos.sum()
    wneg = 0.5 / neg.sum()

    def loss(theta):
        params, ab = theta
        E = forward(params, Z)
        C = anp.dot(E, E.T)
        reg = wd * sum(anp.sum(W * W) for W, _ in params)
        if kind == "supcon":
            logits = C / tau - 1e9 * eye
            m = anp.max(logits, axis=1, keepdims=True)
            lse = m + anp.log(anp.sum(anp.exp(logits - m), axis=1, keepdims=True))
            logp = logits - lse
            per = -anp.sum(logp * pos, axis=1) / npos
            return anp.sum(per * has_pos) / has_pos.sum() + reg
        # weighted pairwise logistic (contrastive) loss on sigmoid(a + b cos)
        x = ab[0] + ab[1] * C
        lp = -anp.logaddexp(0.0, -x)
        ln = -anp.logaddexp(0.0, x)
        return -(wpos * anp.sum(pos * lp) + wneg * anp.sum(neg * ln)) + reg

    return loss


def adam(loss, theta, steps, lr, on_eval, eval_every):
    vg = value_and_grad(loss)
    flat = []

    def walk(t):
        if isinstance(t, (list, tuple)):
            for x in t:
                walk(x)
        else:
            flat.append(t)
    walk(theta)
    m = [np.zeros_like(x) for x in flat]
    v = [np.zeros_like(x) for x in flat]
    b1, b2, eps = 0.9, 0.999, 1e-8

    def rebuild(t, it):
        if isinstance(t, list):
            return [rebuild(x, it) for x in t]
        if isinstance(t, tuple):
            return tuple(rebuild(x, it) for x in t)
        return next(it)

    history = []
    for step in range(1, steps + 1):
        val, g = vg(theta)
        gflat = []

        def walkg(t):
            if isinstance(t, (list, tuple)):
                for x in t:
                    walkg(x)
            else:
                gflat.append(t)
        walkg(g)
        new = []
        for i, (x, gi) in enumerate(zip(flat, gflat)):
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            mh = m[i] / (1 - b1 ** step)
            vh = v[i] / (1 - b2 ** step)
            new.append(x - lr * mh / (np.sqrt(vh) + eps))
        flat = new
        theta = rebuild(theta, iter(flat))
        if step % eval_every == 0 or step == steps:
            history.append((step, float(val), on_eval(theta, step, float(val))))
    return history


def fit_platt(x, y, iters=100):
    """Logistic regression y ~ sigmoid(a + b x) by Newton's method (float64)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    a, b = 0.0, 1.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(a + b * x)))
        g = np.array([np.sum(p - y), np.sum((p - y) * x)])
        w = p * (1 - p)
        H = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
        step = np.linalg.solve(H + 1e-9 * np.eye(2), g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-12:
            break
    return float(a), float(b)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def calibration_report(p, y, edges=(0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0)):
    p = np.asarray(p, np.float64)
    y = np.asarray(y, np.float64)
    eps = 1e-12
    ll = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
    brier = np.mean((p - y) ** 2)
    base = y.mean()
    brier_base = np.mean((base - y) ** 2)
    ece = 0.0
    table = []
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        sel = (p >= lo) & ((p < hi) if i < len(edges) - 2 else (p <= hi))
        if sel.sum() == 0:
            continue
        ece += sel.mean() * abs(p[sel].mean() - y[sel].mean())
        table.append({"bin": [lo, hi],
                      "mean_predicted": round(float(p[sel].mean()), 4),
                      "observed_rate": round(float(y[sel].mean()), 4),
                      "pairs": int(sel.sum())})
    return {"log_loss": float(ll), "brier": float(brier),
            "brier_constant_rate": float(brier_base),
            "expected_calibration_error": float(ece),
            "mean_predicted": float(p.mean()), "observed_rate": float(base),
            "reliability_bins": table}


# ---- ONNX -------------------------------------------------------------------
def build_onnx(mean, std, params, F, D, path):
    inits = [numpy_helper.from_array(mean.astype(np.float32).reshape(1, F), "feat_mean"),
             numpy_helper.from_array(std.astype(np.float32).reshape(1, F), "feat_std"),
             numpy_helper.from_array(np.array([1e-12], np.float32), "norm_eps")]
    nodes = [helper.make_node("Sub", ["features", "feat_mean"], ["centered"]),
             helper.make_node("Div", ["centered", "feat_std"], ["h0"])]
    h = "h0"
    for li, (W, b) in enumerate(params):
        inits.append(numpy_helper.from_array(W.astype(np.float32), f"W{li + 1}"))
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"b{li + 1}"))
        nodes.append(helper.make_node("MatMul", [h, f"W{li + 1}"], [f"mm{li + 1}"]))
        last = li == len(params) - 1
        out = "z" if last else f"pre{li + 1}"
        nodes.append(helper.make_node("Add", [f"mm{li + 1}", f"b{li + 1}"], [out]))
        if not last:
            nodes.append(helper.make_node("Tanh", [out], [f"h{li + 1}"]))
            h = f"h{li + 1}"
    nodes += [
        helper.make_node("ReduceSumSquare", ["z"], ["sumsq"], axes=[1], keepdims=1),
        helper.make_node("Max", ["sumsq", "norm_eps"], ["sumsq_safe"]),
        helper.make_node("Sqrt", ["sumsq_safe"], ["norm"]),
        helper.make_node("Div", ["z", "norm"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "ames_similarity",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", F])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", D])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="ames-similarity/train.py",
                              producer_version=VERSION)
    model.ir_version = 8
    model.doc_string = ("Ames comparable-sales embedding; features -> "
                        "L2-normalised embedding. See README.md.")
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return model


class OrtEmbedder:
    def __init__(self, path):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def __call__(self, X):
        return self.sess.run(["embedding"], {"features": X.astype(np.float32)})[0]


def score_pair(ea, eb, a, b):
    """Reference score: float64 arithmetic on the float32 embeddings."""
    cos = float(np.dot(ea.astype(np.float64), eb.astype(np.float64)))
    return 1.0 / (1.0 + math.exp(-(a + b * cos)))


def jdump(obj, path):
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")


# ---- main -------------------------------------------------------------------
def main():
    args = parse_args()
    t0 = time.time()
    rng = np.random.default_rng(SEED)
    all_rows, rows = load_rows(args.data)
    n = len(rows)
    tr, va, te = split_by_house(n, rng)
    yidx = year_index(rows, tr)

    features = build_feature_metadata([rows[i] for i in tr], all_rows)
    excl = {s for s in args.exclude.split(",") if s}
    if excl:
        features = [f for f in features if f["name"] not in excl]
        col = 0
        for f in features:
            f["column"] = col
            col += 1 if f["type"] == "number" else len(f["categories"])
    hidden = [int(h) for h in args.hidden.split(",") if h]
    D = args.dim
    meta = {"name": NAME, "version": VERSION, "onnx": f"{NAME}.onnx",
            "input": {"name": "features", "width": 0},
            "output": {"name": "embedding", "width": D},
            "score": {"a": None, "b": None, "formula": "sigmoid(a + b * cosine)"},
            "features": features}
    F = input_width(meta)
    meta["input"]["width"] = F

    props = [row_to_property(r) for r in rows]
    X = encode_many(props, meta).astype(np.float64)

    # standardisation constants: numeric columns from training houses,
    # one-hot columns left as 0/1 (mean 0, std 1)
    mean = np.zeros(F)
    std = np.ones(F)
    for f in features:
        if f["type"] == "number":
            c = f["column"]
            mean[c] = X[tr, c].mean()
            std[c] = X[tr, c].std()
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)

    def standardise(A):
        return ((A.astype(np.float32) - mean32) / std32).astype(np.float64)

    Z = standardise(X)
    L_tr = comparable_matrix(rows, tr, yidx)
    L_va = comparable_matrix(rows, va, yidx)
    L_te = comparable_matrix(rows, te, yidx)

    print(f"houses: {n} arm's-length sales of {len(all_rows)}; "
          f"train {len(tr)} / val {len(va)} / test {len(te)}; F={F} D={D}")
    print("year index (log price, base 2006):",
          {k: round(v, 4) for k, v in yidx.items()})
    for nm, L in (("train", L_tr), ("val", L_va), ("test", L_te)):
        print(f"  {nm}: comparable pair rate {upper(L).mean():.4f}, "
              f"median comparables per house {np.median(L.sum(1)):.0f}")

    # baseline: standardised Euclidean distance on the raw features
    def euclid_sim(idx):
        A = standardise(X[idx])
        sq = (A * A).sum(1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * A @ A.T, 0)
        return -np.sqrt(d2)

    base_va = all_metrics(euclid_sim(va), L_va)
    print("baseline val:", {k: round(v, 4) for k, v in base_va.items()})

    sizes = [F] + hidden + [D]
    params = init_params(sizes, rng)
    theta = [params, np.array([0.0, 5.0])]
    loss = make_loss(Z[tr], L_tr, args.loss, args.tau, args.wd)
    best = {"score": -1.0}
    Zva = Z[va]

    def on_eval(theta, step, lossval):
        E = forward(theta[0], Zva)
        m = retrieval_metrics(E @ E.T, L_va)
        sel = m[f"ndcg@{K}"] + m[f"recall@{K}"]
        if sel > best["score"]:
            best.update(score=sel, step=step,
                        params=[(W.copy(), b.copy()) for W, b in theta[0]], m=m)
        return m

    hist = adam(loss, theta, args.steps, args.lr, on_eval, args.eval_every)
    for step, lv, m in hist[:: max(1, len(hist) // 12)]:
        print(f"  step {step:5d} loss {lv:.4f} val recall@10 {m['recall@10']:.4f} "
              f"ndcg@10 {m['ndcg@10']:.4f}")
    params = best["params"]
    print(f"best step {best['step']}: val", {k: round(v, 4) for k, v in best["m"].items()})

    E_va = np.asarray(forward(params, Zva))
    a, b = fit_platt(upper(E_va @ E_va.T), upper(L_va))
    print(f"Platt: a={a:.4f} b={b:.4f}  ({time.time() - t0:.0f}s)")
    if args.quick:
        E_te = np.asarray(forward(params, Z[te]))
        mt = all_metrics(E_te @ E_te.T, L_te)
        bt = all_metrics(euclid_sim(te), L_te)
        print("test model   :", {k: round(v, 4) for k, v in mt.items()})
        print("test baseline:", {k: round(v, 4) for k, v in bt.items()})
        return
    assert b > 0

    # ---- export -----------------------------------------------------------
    meta["score"]["a"] = a
    meta["score"]["b"] = b
    onnx_path = os.path.join(args.out, f"{NAME}.onnx")
    build_onnx(mean, std, params, F, D, onnx_path)
    jdump(meta, os.path.join(args.out, f"{NAME}.json"))
    embed = OrtEmbedder(onnx_path)

    # parity of exported graph vs training forward pass
    E_np = np.asarray(forward(params, Z))
    E_ort = embed(X.astype(np.float32))
    parity = float(np.abs(E_np - E_ort).max())
    assert parity < 1e-4, parity
    norms = np.linalg.norm(E_ort.astype(np.float64), axis=1)
    assert np.abs(norms - 1).max() < 1e-5

    # ---- held-out evaluation (with the exported model) --------------------
    E_te = E_ort[te].astype(np.float64)
    C_te = E_te @ E_te.T
    m_model = all_metrics(C_te, L_te)
    m_base = all_metrics(euclid_sim(te), L_te)
    p_te = sigmoid(a + b * upper(C_te))
    calib = calibration_report(p_te, upper(L_te))
    print("held-out model   :", {k: round(v, 4) for k, v in m_model.items()})
    print("held-out baseline:", {k: round(v, 4) for k, v in m_base.items()})
    print(f"held-out calibration: mean p {calib['mean_predicted']:.4f} vs rate "
          f"{calib['observed_rate']:.4f}, brier {calib['brier']:.4f} "
          f"(constant {calib['brier_constant_rate']:.4f}), "
          f"ECE {calib['expected_calibration_error']:.4f}")
    for row in calib["reliability_bins"]:
        print(f"  p in {row['bin']}: mean {row['mean_predicted']:.4f} observed "
              f"{row['observed_rate']:.4f} ({row['pairs']} pairs)")

    metrics = {
        "model": f"{NAME}@{VERSION}",
        "data": {"source": "R package modeldata (Debian r-cran-modeldata), "
                           "modeldata::ames", "rows_in_csv": len(all_rows),
                 "csv_sha256": hashlib.sha256(open(args.data, "rb").read()).hexdigest(),
                 "arms_length_sales_used": n,
                 "split": {"train": len(tr), "validation": len(va), "test": len(te),
                           "seed": SEED, "by": "house (each row is one house)"}},
        "labels": {"definition": "same neighbourhood or within 1 km; same property "
                                 "segment (detached / attached / two-family); "
                                 "|year-adjusted log price difference| <= ln(1.10)",
                   "year_index_log_price": {str(k): v for k, v in yidx.items()},
                   "comparable_pair_rate": {"train": float(upper(L_tr).mean()),
                                            "validation": float(upper(L_va).mean()),
                                            "test": float(upper(L_te).mean())}},
        "evaluation": {"pool": "held-out test houses; each queries all others",
                       "relevance": "binary (comparable or not)",
                       "recall@10": "comparables in top 10 / all comparables of "
                                    "the query in the pool (queries with none skipped)",
                       "pair_auc": "all unordered held-out pairs"},
        "test": {"model": m_model, "baseline_standardised_euclidean": m_base},
        "validation": {"model": best["m"], "baseline_standardised_euclidean": base_va},
        "calibration": {"a": a, "b": b, "fitted_on": "all validation pairs",
                        "test": calib},
        "training": {"architecture": f"{F} -> " + " -> ".join(
                         f"{h} tanh" for h in hidden) + f" -> {D} -> L2 normalise",
                     "loss": args.loss, "temperature": args.tau,
                     "optimizer": "Adam (full batch)", "learning_rate": args.lr,
                     "weight_decay_l2": args.wd, "max_steps": args.steps,
                     "best_step": best["step"],
                     "early_stopping": "validation nDCG@10 + recall@10",
                     "seed": SEED},
        "export": {"max_abs_diff_training_vs_onnxruntime": parity,
                   "onnx_bytes": os.path.getsize(onnx_path)},
    }
    jdump(metrics, os.path.join(args.out, "metrics.json"))

    write_references(args.out, rows, te, L_te, E_ort, props, meta, a, b, embed,
                     np.random.default_rng(SEED + 1))
    print(f"done in {time.time() - t0:.0f}s")


def strip(prop, drop):
    return {k: v for k, v in prop.items() if k not in drop}


def write_references(out, rows, te, L_te, E_all, props, meta, a, b, embed, rng):
    optional = [f["name"] for f in meta["features"] if not f["required"]]
    tag = f"{NAME}@{VERSION}"
    te = list(te)
    order = list(rng.permutation(len(te)))

    def emb(prop):
        return embed(encode(prop, meta)[None, :])[0]

    cases = []

    def add(pa, pb, kind):
        cases.append({"kind": kind, "a": pa, "b": pb,
                      "score": score_pair(emb(pa), emb(pb), a, b)})

    # identical pairs (some with optional fields omitted -> defaults)
    for k, t in enumerate(order[:5]):
        p = props[te[t]]
        if k >= 3:
            p = strip(p, optional[:k + 1])
        add(p, dict(p), "identical")
    # comparable (near) pairs
    pos = np.argwhere(np.triu(L_te, 1))
    for k, (i, j) in enumerate(pos[rng.permutation(len(pos))[:8]]):
        pa, pb = props[te[i]], props[te[j]]
        if k % 3 == 2:
            pb = strip(pb, optional[k % len(optional):][:3])
        add(pa, pb, "comparable")
    # same-neighbourhood non-comparables and random pairs
    nb = [props[te[t]]["neighborhood"] for t in range(len(te))]
    same = [(i, j) for i in range(len(te)) for j in range(i + 1, len(te))
            if nb[i] == nb[j] and not L_te[i, j]]
    for k, idx in enumerate(rng.permutation(len(same))[:6]):
        i, j = same[idx]
        pa, pb = props[te[i]], props[te[j]]
        if k % 2 == 1:
            pa = strip(pa, optional)
        add(pa, pb, "same_neighborhood_not_comparable")
    for _ in range(6):
        i, j = rng.choice(len(te), 2, replace=False)
        add(props[te[i]], props[te[j]], "random")
    jdump({"model": tag, "tolerance": 1e-5,
           "score_formula": "sigmoid(a + b * cosine), cosine = dot product of the "
                            "two float32 embeddings, evaluated in float64",
           "a": a, "b": b, "cases": cases},
          os.path.join(out, "reference-scores.json"))

    # search: 40 listings, 3 queries chosen for clear top-5 score gaps
    listing_t = order[5:45]
    listings = [props[te[t]] for t in listing_t]
    EL = embed(encode_many(listings, meta)).astype(np.float64)
    cands = []
    for t in order[45:]:
        q = props[te[t]]
        eq = embed(encode(q, meta)[None, :])[0].astype(np.float64)
        s = sigmoid(a + b * (EL @ eq))
        top = np.lexsort((np.arange(len(s)), -s))
        gaps = -np.diff(s[top[:6]])
        cands.append((float(gaps.min()), t, q, top[:5], s[top[:5]]))
    cands.sort(key=lambda c: (-c[0], c[1]))
    queries = []
    for gap, t, q, top, sc in cands[:3]:
        queries.append({"property": q, "top5": [int(x) for x in top],
                        "scores": [float(x) for x in sc],
                        "min_gap_top6": gap})
    jdump({"model": tag,
           "ranking": "score descending, ties broken by lower listing index",
           "listings": listings, "queries": queries},
          os.path.join(out, "reference-search.json"))


if __name__ == "__main__":
    sys.exit(main())
