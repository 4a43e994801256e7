"""Outcomes: duplicates, eligibility, windows, proxies, the ledger, exactly one outcome per row."""

from __future__ import annotations

import polars as pl
import pytest

from tests.support.frames import application, outcomes, person, rrn, run_decide

HEAD = rrn("750312", "1")
SPOUSE = rrn("780701", "2")
ADULT_CHILD = rrn("000404", "4")  # 24 on the reference date
MINOR = rrn("120505", "4")
GRANDPARENT = rrn("450101", "2")
NEIGHBOUR = rrn("700101", "1", "55555")
HOUSEHOLD = [
    person(HEAD),
    person(SPOUSE, relation="배우자"),
    person(ADULT_CHILD, relation="자녀"),
    person(MINOR, relation="자녀"),
    person(GRANDPARENT, relation="모"),
    person(NEIGHBOUR, household="2"),
]


@pytest.mark.parametrize(
    ("beneficiary", "applicant", "channel", "outcome", "reason"),
    [
        (HEAD, HEAD, "online", "PAID", None),
        (MINOR, HEAD, "online", "PAID", None),
        (MINOR, SPOUSE, "online", "PAID", None),
        (MINOR, GRANDPARENT, "online", "PROXY_NOT_ALLOWED", "PROXY_NOT_HEAD_OR_SPOUSE"),
        (ADULT_CHILD, HEAD, "online", "PROXY_NOT_ALLOWED", "PROXY_ADULT_ONLINE"),
        (ADULT_CHILD, HEAD, "office", "PAID", None),
        (ADULT_CHILD, SPOUSE, "office", "PROXY_NOT_ALLOWED", "PROXY_NOT_HEAD"),
        (MINOR, NEIGHBOUR, "online", "PROXY_NOT_ALLOWED", "PROXY_OUTSIDE_HOUSEHOLD"),
        (ADULT_CHILD, NEIGHBOUR, "office", "HELD_FOR_REVIEW", "PROXY_NEEDS_FAMILY_PROOF"),
        (
            HEAD,
            rrn("660606", "1", "77777"),
            "office",
            "HELD_FOR_REVIEW",
            "PROXY_NEEDS_FAMILY_PROOF",
        ),
    ],
)
def test_proxy_rules_of_the_office(
    beneficiary: str, applicant: str, channel: str, outcome: str, reason: str | None
) -> None:
    decided = run_decide(HOUSEHOLD, [application("A1", beneficiary, applicant, channel=channel)])
    assert outcomes(decided) == [(outcome, [reason] if reason else [])]


@pytest.mark.parametrize(
    ("at", "outcome"),
    [
        ("2025-01-20T23:59:59", "INELIGIBLE"),
        ("2025-01-21T00:00:00", "PAID"),
        ("2025-02-28T23:59:59", "PAID"),
        ("2025-03-01T00:00:00", "INELIGIBLE"),
        ("2025-02-28T15:30:00Z", "INELIGIBLE"),  # 00:30 on 1 March in Seoul
    ],
)
def test_korean_window_is_inclusive_in_seoul_time(at: str, outcome: str) -> None:
    decided = run_decide([person(HEAD)], [application("A1", HEAD, at=at)])
    assert outcomes(decided)[0][0] == outcome
    registry = "PAID" if outcome == "PAID" else "UNENROLLED"
    assert outcomes(decided, "registry")[0][0] == registry


@pytest.mark.parametrize(
    ("visa", "at", "outcome"),
    [
        ("F-6", "2025-03-04T09:00:00", "PAID"),
        ("F-2-1", "2025-03-14T20:00:00", "PAID"),
        ("F-5", "2025-03-15T09:00:00", "INELIGIBLE"),
        ("F-5", "2025-02-10T09:00:00", "INELIGIBLE"),
        ("E-9", "2025-03-05T09:00:00", "INELIGIBLE"),
    ],
)
def test_foreigners_by_visa_and_their_own_window(visa: str, at: str, outcome: str) -> None:
    foreigner = rrn("920303", "6")
    row = person(foreigner, nationality="외국인", visa_type=visa)
    decided = run_decide([row], [application("A1", foreigner, at=at)])
    assert outcomes(decided)[0][0] == outcome


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "사망", "status_changed_on": "2024-11-01"}, "STATUS_NOT_ELIGIBLE"),
        ({"status": "말소"}, "STATUS_NOT_ELIGIBLE"),
        ({"status": "재외국민"}, "STATUS_NOT_ELIGIBLE"),
        ({"status": "거주불명", "address": None}, "STATUS_NOT_ELIGIBLE"),
    ],
)
def test_statuses_outside_the_program_are_ineligible(change: dict[str, str], reason: str) -> None:
    decided = run_decide([person(HEAD, **change)], [application("A1", HEAD)])
    assert outcomes(decided, "registry") == [("INELIGIBLE", [reason])]
    assert outcomes(decided) == [("INELIGIBLE", ["BENEFICIARY_INELIGIBLE"])]


def test_same_rrn_in_two_files_keeps_the_first_and_pays_once() -> None:
    decided = run_decide([person(HEAD), person(HEAD)], [application("A1", HEAD)])
    assert outcomes(decided, "registry") == [("PAID", []), ("DUPLICATE_RECORD", ["DUPLICATE_RRN"])]
    assert decided.registry["duplicate_of"].to_list() == [None, "f.csv:1"]
    assert decided.payees.height == 1


def test_several_applications_keep_the_earliest_and_say_which_won() -> None:
    apps = [
        application("A2", HEAD, at="2025-01-25T10:00:00"),
        application("A1", HEAD, at="2025-01-22T10:00:00"),
        application("A3", HEAD, at="2025-03-25T10:00:00"),
    ]
    decided = run_decide([person(HEAD)], apps)
    assert outcomes(decided) == [
        ("DUPLICATE_APPLICATION", ["DUPLICATE_OF_EARLIER_APPLICATION"]),
        ("PAID", []),
        ("INELIGIBLE", ["OUTSIDE_WINDOW"]),
    ]
    assert decided.enrollment["duplicate_of"].to_list() == ["A1", None, None]


def test_a_person_paid_by_an_earlier_run_is_not_paid_again() -> None:
    first = run_decide([person(HEAD)], [application("A1", HEAD)])
    key = first.registry["person_key"][0]
    again = run_decide([person(HEAD)], [application("A9", HEAD)], paid_before=[key])
    assert outcomes(again, "registry") == [("ALREADY_PAID", ["PAID_IN_EARLIER_RUN"])]
    assert outcomes(again) == [("ALREADY_PAID", ["BENEFICIARY_ALREADY_PAID"])]
    assert again.payees.height == 0


def test_payment_id_is_stable_for_program_person_and_instalment() -> None:
    one = run_decide([person(HEAD)], [application("A1", HEAD)])
    two = run_decide([person(HEAD)], [application("B7", HEAD, at="2025-02-01T10:00:00")])
    assert one.payees["payment_id"].to_list() == two.payees["payment_id"].to_list()
    assert one.registry["payment_id"][0] == one.enrollment["payment_id"][0]


def test_household_without_a_head_is_warned_not_blocked() -> None:
    decided = run_decide([person(HEAD, relation="배우자")], [application("A1", HEAD)])
    assert decided.registry["warning_codes"].to_list() == [["HOUSEHOLD_NO_HEAD"]]
    assert outcomes(decided, "registry")[0][0] == "PAID"


def test_every_row_gets_exactly_one_outcome() -> None:
    apps = [application(f"A{i}", who) for i, who in enumerate([HEAD, MINOR, "bad", NEIGHBOUR])]
    decided = run_decide([*HOUSEHOLD, person("123")], apps)
    for frame in (decided.registry, decided.enrollment):
        assert frame["outcome"].null_count() == 0
    assert decided.registry.height == len(HOUSEHOLD) + 1
    assert decided.enrollment.height == 4
    assert decided.registry.filter(pl.col("outcome") == "PAID").height == decided.payees.height
