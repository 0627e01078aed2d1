"""How fast the CLI starts: `failover --help` and `failover validate` against baselines.

Baselines measured in the same run: a bare interpreter, and the same CLI with every
dependency imported eagerly (what lazy imports save). Prints medians of N runs.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 21
EAGER = ("import pydantic, yaml, dns.name, dns.message, dns.update, dns.query, dns.tsigkeyring; "
         "import failover.config, failover.plan, policies; ")


def median_ms(argv: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False, timeout=60)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    py = sys.executable
    exe = str(Path(py).parent / "failover")  # the console script users run
    cli = "from failover.cli import main; import sys; sys.argv[0] = 'failover'; main()"
    rows = [
        ("python -c pass (interpreter floor)", [py, "-c", "pass"]),
        ("failover --help", [exe, "--help"]),
        ("python -c <cli> --help (lazy, as shipped)", [py, "-c", cli, "--help"]),
        ("python -c <cli> --help, every dependency eager", [py, "-c", EAGER + cli, "--help"]),
        ("failover validate --config examples/contract.yaml",
         [exe, "validate", "--config", "examples/contract.yaml"]),
        ("failover plan --config examples/contract.yaml",
         [exe, "plan", "--config", "examples/contract.yaml"]),
    ]
    results = {name: median_ms(argv) for name, argv in rows}
    floor = results[rows[0][0]]
    print(f"CLI start-up, median of {RUNS} runs (ms); 'over floor' subtracts the bare interpreter")
    for name, ms in results.items():
        print(f"  {name:<55} {ms:7.1f} ms   over floor {ms - floor:6.1f} ms")
    lazy = results["python -c <cli> --help (lazy, as shipped)"]
    eager = results["python -c <cli> --help, every dependency eager"]
    print(f"  lazy imports: --help costs {(lazy - floor) / max(eager - floor, 1e-9):.2f}x "
          f"of the eager variant's import time")


if __name__ == "__main__":
    main()
