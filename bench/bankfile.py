"""Benchmark the bank bulk-transfer writer and reader against a floor measured in the same run.

    python -m bench.bankfile --rows 100000 [--repeat 3]

- floor: polars writes the same data-record values as a UTF-8 CSV (no padding, no CP949);
- write: `flows.pay.bankfile.bank_files` (cut and pad by CP949 bytes, control totals, encode);
- read: `flows.pay.bankfile.read_bank_file` on the result.
Holder names mix plain Hangul, names too long for the field and names CP949 cannot encode, and
the memo is cut on every record, so the costly paths run. Targets live here, never in tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import time
from collections.abc import Callable

import polars as pl

from flows.inputs import reference
from flows.pay import bankfile

TARGET_WRITE_RATIO = 12.0  # the floor skips every byte rule; measured 8.1x (100,000 records)
NAMES = ["김민수", "이지은", "A가나다라마바사아자차", "Nguyễn Thị Lan", "남궁민수", "WANG FANG"]


def payees(rows: int) -> pl.DataFrame:
    """Return `rows` bank payees with varied holder names, all in one payment file."""
    i = pl.int_range(rows, dtype=pl.Int64, eager=True)
    names = pl.Series(NAMES)
    return pl.DataFrame(
        {
            "payment_file": pl.repeat("bank_0001.dat", rows, eager=True),
            "seq": i + 1,
            "bank_code": pl.repeat("088", rows, eager=True),
            "account_no": (i + 110_000_000_000).cast(pl.String),
            "amount_krw": pl.repeat(100_000, rows, eager=True, dtype=pl.Int64),
            "account_holder": names.gather(i % len(NAMES)) + (i % 97).cast(pl.String),
            "payment_id": "JW" + i.cast(pl.String).str.zfill(22),
        }
    )


def best(fn: Callable[[], object], repeat: int) -> float:
    """Return the best wall time of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = reference.bank_settings()
    rows = bankfile.data_rows(payees(args.rows), "파주시 민생회복 생활안정지원금")
    day = dt.date(2025, 3, 1)
    floor = best(lambda: rows.write_csv(io.BytesIO()), args.repeat)
    write = best(lambda: bankfile.bank_files(rows, settings, "bench", day), args.repeat)
    content = bankfile.bank_files(rows, settings, "bench", day)[0].content
    read = best(lambda: bankfile.read_bank_file(content, settings.layout), args.repeat)
    print(f"{'':8} {'seconds':>8} {'records/s':>12}")
    for name, seconds in (("floor", floor), ("write", write), ("read", read)):
        print(f"{name:8} {seconds:8.3f} {args.rows / seconds:12,.0f}")
    print(f"ratio write/floor: {write / floor:.1f} (target <= {TARGET_WRITE_RATIO:.0f})")


if __name__ == "__main__":
    main()
