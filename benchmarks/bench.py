"""Pipeline benchmark: wall time and peak memory of each step at a given scale.

    python benchmarks/bench.py --customers 1000000 [--steps generate,load,build] [--out FILE]

Each step runs as its own `retention` process (as in production), measured with wait4 so the
peak resident memory is that step's own. Results are printed as a table and saved as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = {
    "generate": ["generate", "--customers", "{customers}", "--seed", "42"],
    "load": ["load"],
    "build": ["build"],
    "validate": ["validate"],
    "publish": ["publish"],
}


def measure(args: list[str], data_dir: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "retention", "--data-dir", str(data_dir), *args]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        stderr = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"step {' '.join(args)} failed:\n{stderr}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--data-dir", type=Path, help="default: a temporary folder")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latest.json"))
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="retention-bench-"))
    results = {}
    for name in args.steps.split(","):
        step_args = [a.format(customers=args.customers) for a in STEPS[name]]
        print(f"{name} ...", flush=True)
        results[name] = measure(step_args, data_dir)
    report = {
        "customers": args.customers,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "data_dir": str(data_dir),
        "steps": results,
    }
    print(f"\n{'step':<12}{'seconds':>10}{'peak MiB':>12}")
    for name, r in results.items():
        print(f"{name:<12}{r['seconds']:>10.1f}{r['peak_rss_mib']:>12.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
