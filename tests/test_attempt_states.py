"""How result lines move payment attempts (flows.audit.attempts.transitions), line by line:
results may arrive in any order and in several files, and only a consistent story is recorded."""

from __future__ import annotations

import polars as pl
import pytest

from flows.audit import attempts as tried


def current(state: str) -> pl.DataFrame:
    """One attempt of 100,000 won in `state`."""
    issued = pl.DataFrame(
        {
            "payment_id": ["JW1"],
            "attempt": [1],
            "instruction_id": ["JW1-1"],
            "run_id": ["r1"],
            "run_month": ["2025-03"],
            "person_key": ["p"],
            "instalment": [1],
            "amount_krw": [100_000],
            "payout": ["local_currency"],
            "payout_key": ["k"],
            "payment_file": ["f.csv"],
            "reissue_of": [None],
        },
        schema=tried.ATTEMPT_SCHEMA,
    )
    events = tried.empty_events().with_columns(
        result_run_id=pl.lit(None, pl.String), _order=pl.lit(None, pl.Int64)
    )
    released = pl.DataFrame({"run_id": ["r1"], "attempt_state": [state]})
    frame = tried.states(issued, events, released)
    assert frame["state"].to_list() == [state]  # an attempt no result answered: its run's state
    return frame


def lines(*statuses: str, amount: int = 100_000) -> pl.DataFrame:
    """Result lines for JW1-1, in this order."""
    n = len(statuses)
    return pl.DataFrame(
        {
            "seq": list(range(n)),
            "result_file": ["r.csv"] * n,
            "line": list(range(2, n + 2)),
            "payment_id": ["JW1"] * n,
            "attempt": [1] * n,
            "instruction_id": ["JW1-1"] * n,
            "status": list(statuses),
            "amount_krw": [amount] * n,
        }
    )


def moved(state: str, *statuses: str) -> list[tuple[str, str | None]]:
    checked = tried.transitions(lines(*statuses), current(state))
    return list(zip(checked["state"], checked["fault"], strict=True))


@pytest.mark.parametrize(
    ("state", "statuses", "expected"),
    [
        ("RELEASED", ["SETTLED"], [("SETTLED", None)]),
        ("RELEASED", ["IN_FLIGHT", "REJECTED"], [("IN_FLIGHT", None), ("REJECTED", None)]),
        ("RELEASED", ["SETTLED", "REJECTED"], [("SETTLED", None), ("RETURNED", None)]),
        ("SETTLED", ["REJECTED"], [("RETURNED", None)]),
        ("SETTLED", ["IN_FLIGHT"], [("IN_FLIGHT", None)]),
        # a return read before its settlement: the settlement changes nothing
        ("RETURNED", ["SETTLED"], [("RETURNED", None)]),
        ("RELEASED", ["RETURNED", "SETTLED"], [("RETURNED", None), ("RETURNED", None)]),
    ],
    ids=[
        "settled",
        "pending then rejected",
        "settled then rejected is a return",
        "rejected after an earlier settlement is a return",
        "pending after final changes nothing",
        "settlement after its return",
        "return then settlement in one import",
    ],
)
def test_consistent_results_are_recorded_in_any_order(
    state: str, statuses: list[str], expected: list[tuple[str, str | None]]
) -> None:
    assert moved(state, *statuses) == expected


@pytest.mark.parametrize(
    ("state", "statuses", "fault"),
    [
        ("REJECTED", ["SETTLED"], tried.CONFLICT),
        ("REJECTED", ["REJECTED"], tried.DUPLICATE),
        ("SETTLED", ["SETTLED"], tried.DUPLICATE),
        ("RETURNED", ["REJECTED"], tried.DUPLICATE),
        ("RETURNED", ["RETURNED"], tried.DUPLICATE),
        ("VOIDED", ["SETTLED"], tried.VOIDED_ATTEMPT),
        ("VOIDED", ["IN_FLIGHT"], tried.VOIDED_ATTEMPT),
        ("ISSUED", ["IN_FLIGHT"], tried.NOT_RELEASED),
    ],
    ids=[
        "settled after rejected",
        "rejected twice",
        "settled twice",
        "rejected after returned",
        "returned twice",
        "voided",
        "pending for voided",
        "pending before release",
    ],
)
def test_inconsistent_results_are_refused(state: str, statuses: list[str], fault: str) -> None:
    assert moved(state, *statuses)[-1][1] == fault


def test_a_line_for_another_amount_or_an_unknown_attempt_is_refused() -> None:
    wrong = tried.transitions(lines("SETTLED", amount=99_999), current("RELEASED"))
    assert wrong["fault"].to_list() == [tried.AMOUNT]
    unknown = lines("SETTLED").with_columns(instruction_id=pl.lit("JW9-1"))
    assert tried.transitions(unknown, current("RELEASED"))["fault"].to_list() == [tried.UNKNOWN]


def test_an_earlier_instalment_owed_again_is_due_before_a_later_one_already_paid() -> None:
    """Instalment 1 returned after instalment 2 was paid: the person is not blocked as paid,
    instalment 1 is due now, and the application that paid instalment 2 stays used."""
    from flows.decide.rules import REISSUE_SCHEMA, owed_first

    progress = pl.DataFrame(
        {
            "person_key": ["p", "q"],
            "last_paid": [2, 1],
            "next_instalment": [None, 2],
            "next_due": [False, False],
            "next_due_on": [None, None],
            "used_applications": [["A2"], ["B1"]],
        },
        schema_overrides={"next_instalment": pl.Int64, "next_due_on": pl.Date},
    )
    blocked = progress.select(
        "person_key", "last_paid", waiting=pl.col("next_instalment").is_not_null()
    )
    due = pl.DataFrame(
        schema={
            "person_key": pl.String,
            "used_applications": pl.List(pl.String),
            "instalment": pl.Int64,
            "due_on": pl.Date,
        }
    )
    reissue = pl.DataFrame(
        {
            "person_key": ["p"],
            "instalment": [1],
            "payment_id": ["JW1"],
            "last_attempt": [1],
            "last_instruction_id": ["JW1-1"],
            "wrong_keys": [[]],
            "amount_krw": [100_000],
        },
        schema=REISSUE_SCHEMA,
    )
    still_blocked, now_due = owed_first(blocked, due, progress, reissue)
    assert still_blocked["person_key"].to_list() == ["q"]
    assert now_due.to_dicts() == [
        {"person_key": "p", "used_applications": ["A2"], "instalment": 1, "due_on": None}
    ]
