"""The local-currency credit file (지역화폐 충전): its columns, `attempt` last."""

from __future__ import annotations

import io

import polars as pl

from flows.pay import credit


def payees(**extra: pl.Series) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "payment_id": ["JWB", "JWA"],
            "card_id": ["9410000000000001", "9410000000000002"],
            "amount_krw": [100_000, 250_000],
        }
    )
    return credit.assign_files(frame.with_columns(**extra), 10, prefix="local_currency")


def read(rows: pl.DataFrame) -> pl.DataFrame:
    (written,) = credit.credit_files(rows)
    return pl.read_csv(io.BytesIO(written.content), infer_schema=False)


def test_credit_file_columns_end_with_the_attempt_number() -> None:
    back = read(credit.credit_rows(payees(), "RUN", "program", "지원금"))
    assert back.columns == list(credit.CREDIT_COLUMNS)
    assert back.columns[-1] == "attempt"
    assert back.select("payment_id", "attempt").rows() == [("JWA", "1"), ("JWB", "1")]


def test_credit_file_carries_the_payees_attempt_when_they_have_one() -> None:
    attempts = pl.Series([3, 1], dtype=pl.Int64)
    back = read(credit.credit_rows(payees(attempt=attempts), "RUN", "program", "지원금"))
    assert back.select("payment_id", "attempt").rows() == [("JWA", "1"), ("JWB", "3")]
