"""A household with no head, or with two, is paid person by person and flagged for the office."""

from __future__ import annotations

from tests.support.frames import application, outcomes, person, rrn, run_decide

ADULT = rrn("750312", "1")
SPOUSE = rrn("780701", "2", "23456")
CHILD = rrn("120505", "4", "34567")
GROWN_CHILD = rrn("010101", "3", "45678")


def test_household_without_head_pays_its_members_but_refuses_a_proxy_that_needs_a_head() -> None:
    registry = [
        person(ADULT, relation="기타"),
        person(SPOUSE, relation="배우자", birth_date="1978-07-01"),
        person(CHILD, relation="자녀", birth_date="2012-05-05"),
    ]
    decided = run_decide(
        registry,
        [
            application("A1", ADULT),
            application("A2", CHILD, applicant=ADULT, channel="office"),
            application("A3", SPOUSE),
        ],
    )
    assert [o for o, _ in outcomes(decided)] == ["PAID", "PROXY_NOT_ALLOWED", "PAID"]
    warnings = decided.registry["warning_codes"].to_list()
    assert warnings == [["HOUSEHOLD_NO_HEAD"]] * 3


def test_household_without_head_lets_the_spouse_relation_apply_for_a_minor_online() -> None:
    registry = [
        person(SPOUSE, relation="배우자", birth_date="1978-07-01"),
        person(CHILD, relation="자녀", birth_date="2012-05-05"),
    ]
    decided = run_decide(registry, [application("A1", CHILD, applicant=SPOUSE)])
    assert [o for o, _ in outcomes(decided)] == ["PAID"]


def test_household_with_two_heads_lets_either_head_act_and_pays_each_person_once() -> None:
    registry = [
        person(ADULT, relation="본인"),
        person(SPOUSE, relation="본인", birth_date="1978-07-01"),
        person(CHILD, relation="자녀", birth_date="2012-05-05"),
        person(GROWN_CHILD, relation="자녀", birth_date="2001-01-01"),
    ]
    decided = run_decide(
        registry,
        [
            application("A1", CHILD, applicant=SPOUSE),
            application("A2", GROWN_CHILD, applicant=ADULT, channel="office"),
            application("A3", CHILD, applicant=ADULT, at="2025-01-23T10:00:00"),
        ],
    )
    assert [o for o, _ in outcomes(decided)] == ["PAID", "PAID", "DUPLICATE_APPLICATION"]
    assert decided.registry["warning_codes"].to_list() == [["HOUSEHOLD_MULTIPLE_HEADS"]] * 4
