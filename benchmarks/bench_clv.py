"""CLV fitting benchmark: BG/NBD + Gamma-Gamma fit and prediction time at 10^4 .. 10^6 customers.

    python benchmarks/bench_clv.py [--sizes 10000,100000,1000000] [--out FILE]

Customers are simulated from known parameters with ages in whole days over four years, as the
warehouse summary produces them; the figures include compression and convergence checks.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from retention import clv

BG = {"r": 0.8, "alpha": 12.0, "a": 0.6, "b": 1.5}
GG = {"p": 5.0, "q": 4.0, "gamma": 45.0}


def run(n: int, seed: int = 1) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    t_days = rng.integers(1, 1461, n).astype(float)
    x, t_x, t = clv.simulate_bg_nbd(BG, t_days, rng)
    t_x = np.floor(t_x)
    spend = np.nan_to_num(clv.simulate_gamma_gamma(GG, x, rng))
    started = time.perf_counter()
    bg = clv.fit_bg_nbd(x, t_x, t)
    bg_seconds = time.perf_counter() - started
    started = time.perf_counter()
    gg = clv.fit_gamma_gamma(x, spend)
    gg_seconds = time.perf_counter() - started
    started = time.perf_counter()
    clv.predict_clv(bg.params, gg.params, x, t_x, t, spend, 365.0, 0.10)
    predict_seconds = time.perf_counter() - started
    return {
        "customers": n,
        "distinct_rows": bg.n_rows,
        "bg_nbd_seconds": round(bg_seconds, 2),
        "gamma_gamma_seconds": round(gg_seconds, 2),
        "fit_seconds": round(bg_seconds + gg_seconds, 2),
        "predict_seconds": round(predict_seconds, 2),
        **{f"bg_nbd_{k}": round(v, 4) for k, v in bg.params.items()},
        **{f"gamma_gamma_{k}": round(v, 4) for k, v in gg.params.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/clv.json"))
    args = parser.parse_args()
    rows = [run(int(n)) for n in args.sizes.split(",")]
    header = (
        f"{'customers':>10}{'rows':>10}{'bg/nbd s':>10}{'gamma s':>10}{'fit s':>8}{'predict s':>11}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['customers']:>10}{r['distinct_rows']:>10}{r['bg_nbd_seconds']:>10}"
            f"{r['gamma_gamma_seconds']:>10}{r['fit_seconds']:>8}{r['predict_seconds']:>11}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"true": {"bg_nbd": BG, "gamma_gamma": GG}, "runs": rows}, indent=2) + "\n"
    )
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
