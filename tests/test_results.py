"""Exactly once in money (issue 15): results are recorded whole or not at all, and the next run
pays again every payment a result says did not arrive, never twice and never to details that were
refused.

The story delivery pays its residents through Paju Pay cards; the card operator answers with the
credit result CSV of lifecycle.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from flows.audit.verify import verify_trail
from flows.errors import InputRejected
from flows.run.results import ImportParams, import_results, reconciliation
from tests.support.approval import release_run
from tests.support.flowrun import decisions, run_flow, runs

PROGRAM = "paju-livelihood-2025"
HEADER = "payment_id,attempt,card_id,amount,status,reason_code,processed_at"
WHEN = "2025-03-20T10:00:00+09:00"


@pytest.fixture
def data(story: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(story, copy)
    return copy


def credits(out: Path, run_id: str) -> pl.DataFrame:
    """Return every line of a run's credit files (what the card operator received).

    The run is released first (a second person approves it): only released files are sent.
    """
    release_run(out, run_id)
    folder = out / "outbox" / PROGRAM / run_id
    return pl.concat(
        pl.read_csv(f, infer_schema=False) for f in sorted(folder.glob("*.csv"))
    ).with_columns(pl.col("amount").cast(pl.Int64), pl.col("attempt").cast(pl.Int64))


def card_result(path: Path, rows: list[tuple[dict[str, object], str, str]]) -> Path:
    """Write a card operator's result CSV: (credit line, status, reason code) per line."""
    lines = [HEADER] + [
        f"{c['payment_id']},{c['attempt']},{c['card_id']},{c['amount']},{status},{reason},{WHEN}"
        for c, status, reason in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def record(out: Path, *files: Path) -> object:
    return import_results(ImportParams(program=PROGRAM, out=out, files=list(files)))


def answer(out: Path, run_id: str, tmp: Path, refused: dict[int, str]) -> tuple[Path, pl.DataFrame]:
    """Answer every credit of a run: CREDITED, except line i REJECTED with refused[i]."""
    sent = credits(out, run_id)
    rows = [
        (c, "REJECTED", refused[i]) if i in refused else (c, "CREDITED", "")
        for i, c in enumerate(sent.iter_rows(named=True))
    ]
    return card_result(tmp / f"result-{run_id}.csv", rows), sent


def test_results_are_recorded_and_a_rejected_payment_is_paid_again_once(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    # line 0: the card was cancelled (details wrong); line 1: the operator's system failed
    result, sent = answer(out, first.run_id, tmp_path, {0: "CARD_CANCELLED", 1: "SYSTEM_ERROR"})
    summary = record(out, result)
    assert summary.states == {"SETTLED": sent.height - 2, "REJECTED": 2}
    status = reconciliation(out, PROGRAM)
    program = status.by_program.row(0, named=True)
    amount = int(sent["amount"][0])
    assert (program["issued_attempts"], program["settled"], program["rejected"]) == (
        sent.height,
        sent.height - 2,
        2,
    )
    assert program["settled_krw"] == int(sent["amount"].sum()) - 2 * amount
    assert status.owed_again == 2
    assert verify_trail(out)[0] == []

    # The same inputs again: only the temporary failure is paid, to the same card, as attempt 2.
    second = run_flow(data, out, trigger="rerun", reason="re-issue rejected payments")
    again = credits(out, second.run_id)
    assert again.height == 1 and second.total_paid_krw == amount
    retry = again.row(0, named=True)
    assert (retry["payment_id"], retry["attempt"], retry["card_id"]) == (
        sent["payment_id"][1],
        2,
        sent["card_id"][1],
    )
    rows = decisions(out, second.run_id)
    paid = rows.filter(pl.col("outcome") == "PAID")
    assert set(paid["reissue_of"]) == {f"{sent['payment_id'][1]}-1"}
    # The cancelled card is never paid again; its person is owed, and the records say why.
    refused = rows.filter(pl.col("reason_codes").list.contains("PAYOUT_DETAILS_REJECTED"))
    assert refused.height == 1 and refused["outcome"][0] == "INELIGIBLE"
    owed = rows.filter(pl.col("reason_codes").list.contains("PAYMENT_OWED_AGAIN"))
    assert owed.height == 1 and owed["person_key"][0] == refused["person_key"][0]

    # Its report says where the first run's payments stood in money when it started.
    report = (out / "reports" / PROGRAM / second.run_id / "summary.md").read_text()
    settled_won = (sent.height - 2) * amount
    assert f"| {first.run_id} | released | {sent.height:,} (" in report
    assert f"{sent.height - 2:,} ({settled_won:,} won) | 2 ({2 * amount:,} won)" in report

    # A third run with nothing new pays nobody: attempt 2 is in flight.
    third = run_flow(data, out, trigger="rerun", reason="nothing new")
    assert third.total_paid_krw == 0
    assert verify_trail(out)[0] == []


def test_a_corrected_card_in_a_new_delivery_is_paid_as_the_next_attempt(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    result, sent = answer(out, first.run_id, tmp_path, {0: "CARD_LOST"})
    record(out, result)
    refused = decisions(out, first.run_id).filter(
        (pl.col("payment_id") == sent["payment_id"][0]) & (pl.col("source_kind") == "enrollment")
    )
    application_id = refused["application_id"][0]
    original = next(
        line
        for f in sorted((data / "enrollments").glob("*.csv"))
        for line in f.read_text(encoding="utf-8-sig", errors="replace").splitlines()
        if line.startswith(f"{application_id},")
    )
    cells = original.split(",")
    cells[0], cells[1], cells[6] = "C0001", "2025-03-21T09:00:00", "9419999999999999"
    header = (
        "application_id,applied_at,rrn,applicant_rrn,channel,payout,card_id,bank_code,"
        "account_no,account_holder"
    )
    (data / "enrollments" / "enrollments_corrected.csv").write_text(
        header + "\n" + ",".join(cells) + "\n", encoding="utf-8"
    )
    second = run_flow(data, out, trigger="rerun", reason="corrected card delivered")
    again = credits(out, second.run_id)
    assert again.height == 1
    assert (again["payment_id"][0], again["attempt"][0], again["card_id"][0]) == (
        sent["payment_id"][0],
        2,
        "9419999999999999",
    )
    # Settled: nobody has two settled attempts, the person is no longer owed.
    record(out, card_result(tmp_path / "second.csv", [(again.row(0, named=True), "CREDITED", "")]))
    status = reconciliation(out, PROGRAM)
    assert status.owed_again == 0
    settled = status.attempts.filter(pl.col("state") == "SETTLED")
    assert settled["payment_id"].is_unique().all()
    assert settled.height == sent.height


def corrected_card(data: Path, out: Path, run_id: str, payment_id: str, card: str) -> None:
    """Deliver a new application of the person paid by `payment_id`, with a new card."""
    paid = decisions(out, run_id).filter(
        (pl.col("payment_id") == payment_id) & (pl.col("source_kind") == "enrollment")
    )
    application_id = paid["application_id"][0]
    original = next(
        line
        for f in sorted((data / "enrollments").glob("*.csv"))
        for line in f.read_text(encoding="utf-8-sig", errors="replace").splitlines()
        if line.startswith(f"{application_id},")
    )
    cells = original.split(",")
    cells[0], cells[1], cells[6] = "C0001", "2025-03-21T09:00:00", card
    header = (
        "application_id,applied_at,rrn,applicant_rrn,channel,payout,card_id,bank_code,"
        "account_no,account_holder"
    )
    (data / "enrollments" / "enrollments_corrected.csv").write_text(
        header + "\n" + ",".join(cells) + "\n", encoding="utf-8"
    )


def test_a_card_corrected_while_the_payment_was_in_flight_is_paid_when_it_fails(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    # The person reports the card lost and registers a new one before the card operator answers:
    # the new application is ALREADY_PAID then; once the answer refuses the old card, the next
    # run pays the new one (the newest valid application), not nobody.
    out = tmp_path / "out"
    first = run_flow(data, out)
    sent = credits(out, first.run_id)
    corrected_card(data, out, first.run_id, sent["payment_id"][0], "9419999999999999")
    waiting = run_flow(data, out, trigger="rerun", reason="corrected card, payment in flight")
    assert waiting.total_paid_krw == 0
    assert decisions(out, waiting.run_id).filter(pl.col("application_id") == "C0001")[
        "outcome"
    ].to_list() == ["ALREADY_PAID"]
    result, _ = answer(out, first.run_id, tmp_path, {0: "CARD_LOST"})
    record(out, result)
    second = run_flow(data, out, trigger="rerun", reason="re-issue the refused credit")
    again = credits(out, second.run_id)
    assert (again["payment_id"].to_list(), again["attempt"].to_list()) == (
        [sent["payment_id"][0]],
        [2],
    )
    assert again["card_id"][0] == "9419999999999999"


def test_importing_the_same_file_twice_records_it_once(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    result, _ = answer(out, first.run_id, tmp_path, {})
    record(out, result)
    before = runs(out).height
    again = record(out, result)
    assert again.run_id is None and "imported before" in again.message
    assert runs(out).height == before


@pytest.mark.parametrize(
    ("edit", "fault"),
    [
        (
            lambda rows: [*rows[:1], (rows[0][0] | {"payment_id": "JW0"}, "CREDITED", "")],
            "never issued",
        ),
        (lambda rows: [(rows[0][0] | {"amount": 1}, "CREDITED", "")], "amount mismatch"),
    ],
    ids=["unknown attempt", "amount mismatch"],
)
def test_a_result_file_with_a_bad_line_is_refused_whole_and_nothing_is_recorded(
    edit: object, fault: str, data: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    sent = credits(out, first.run_id)
    rows = [(c, "CREDITED", "") for c in sent.iter_rows(named=True)]
    bad = card_result(tmp_path / "bad.csv", edit(rows))  # type: ignore[operator]
    before = runs(out).height
    with pytest.raises(InputRejected, match=fault) as refused:
        record(out, bad)
    assert "bad.csv, line" in str(refused.value)
    assert runs(out).height == before
    assert reconciliation(out, PROGRAM).by_program["settled"][0] == 0


def test_a_settled_after_rejected_is_a_conflict_and_a_repeat_is_a_duplicate(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    sent = credits(out, first.run_id)
    line = sent.row(0, named=True)
    record(out, card_result(tmp_path / "a.csv", [(line, "REJECTED", "CARD_LOST")]))
    with pytest.raises(InputRejected, match="conflicting results"):
        record(out, card_result(tmp_path / "b.csv", [(line, "CREDITED", "")]))
    with pytest.raises(InputRejected, match="duplicate"):
        record(out, card_result(tmp_path / "c.csv", [(line, "REJECTED", "CARD_UNKNOWN")]))


def test_a_return_after_settlement_makes_the_payment_owed_again(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    sent = credits(out, first.run_id)
    line = sent.row(0, named=True)
    record(out, card_result(tmp_path / "a.csv", [(line, "CREDITED", "")]))
    record(out, card_result(tmp_path / "b.csv", [(line, "RETURNED", "CREDIT_REVERSED")]))
    status = reconciliation(out, PROGRAM)
    assert status.by_program["returned"][0] == 1 and status.owed_again == 1
    second = run_flow(data, out, trigger="rerun", reason="re-issue the returned credit")
    again = credits(out, second.run_id)
    assert (again["payment_id"][0], again["attempt"][0]) == (line["payment_id"], 2)


def test_a_result_of_another_programs_payment_names_that_program(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    from tests.test_programs_flow import generated

    out = tmp_path / "out"
    first = run_flow(data, out)
    birth = generated("paju-birth-2025", tmp_path / "birth", rows=300)
    run_flow(birth, out, program="paju-birth-2025", run_month="2025-07")
    sent = credits(out, first.run_id)
    bad = card_result(tmp_path / "r.csv", [(sent.row(0, named=True), "CREDITED", "")])
    with pytest.raises(InputRejected, match=f"is a payment of program {PROGRAM}, not paju-birth"):
        import_results(ImportParams(program="paju-birth-2025", out=out, files=[bad]))


def test_rejected_money_is_not_spent_overdue_is_flagged_and_explain_shows_each_attempt(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    import datetime as dt

    from flows.audit.explain import explain_person
    from flows.inputs.ledger import read_ledger

    out = tmp_path / "out"
    first = run_flow(data, out)
    sent = credits(out, first.run_id)
    line = sent.row(0, named=True)
    record(out, card_result(tmp_path / "a.csv", [(line, "REJECTED", "SYSTEM_ERROR")]))
    # The budget check counts money settled and in flight: the rejected credit is not spent.
    assert read_ledger(out, PROGRAM).paid_total_krw == first.total_paid_krw - line["amount"]
    # Unanswered credits are in flight; past the program's result_due_days they are overdue.
    soon = reconciliation(out, PROGRAM, today=dt.date(2025, 3, 20))
    late = reconciliation(out, PROGRAM, today=dt.date(2099, 1, 1))
    assert soon.by_program["overdue"][0] == 0
    assert late.by_program["overdue_attempts"][0] == late.by_program["in_flight_attempts"][0]
    assert late.by_program["in_flight_attempts"][0] == sent.height - 1
    second = run_flow(data, out, trigger="rerun", reason="re-issue")
    assert second.total_paid_krw == line["amount"]
    story = explain_person(out, payment_id=line["payment_id"])
    assert f"attempt 1 {line['payment_id']}-1" in story and ": REJECTED" in story
    assert "SYSTEM_ERROR from a.csv line 2" in story
    assert f"attempt 2 {line['payment_id']}-2" in story
    # the re-issue waits for its run's release, then is in flight
    assert f"re-issue of {line['payment_id']}-1: ISSUED; run pending (0 of 1" in story
    release_run(out, second.run_id)
    story = explain_person(out, payment_id=line["payment_id"])
    assert f"re-issue of {line['payment_id']}-1: RELEASED; run released (approver-park)" in story


def results_trail(data: Path, tmp_path: Path) -> tuple[Path, str, Path]:
    """A paying run and an import of its answers (all settled); return out, import, file."""
    out = tmp_path / "out"
    first = run_flow(data, out)
    result, _ = answer(out, first.run_id, tmp_path, {})
    imported = record(out, result)
    assert imported.run_id is not None
    folder = out / "audit/results" / f"program={PROGRAM}" / f"run_id={imported.run_id}"
    return out, imported.run_id, folder / "results.parquet"


def assert_halts_paying_nobody(data: Path, out: Path, *words: str) -> None:
    from flows.audit.verify import verify_trail
    from flows.errors import RunHalted

    before = runs(out).height
    with pytest.raises(RunHalted) as halted:
        run_flow(data, out, trigger="rerun", reason="after the attack")
    assert all(w in str(halted.value) for w in words), str(halted.value)
    assert runs(out).height == before  # no record: nothing paid
    problems, _ = verify_trail(out)
    assert problems, "audit verify must name the damage"


def test_a_results_file_edited_to_fail_settled_payments_pays_nobody_twice(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    """The attack: rewrite settled lines as rejected, so the ledger thinks they are owed."""
    out, _, lines = results_trail(data, tmp_path)
    forged = pl.read_parquet(lines).with_columns(
        state=pl.lit("REJECTED"), reason_code=pl.lit("SYSTEM_ERROR"), details_wrong=pl.lit(False)
    )
    forged.write_parquet(lines)
    assert_halts_paying_nobody(data, out, "results.parquet", "was changed")


def test_a_deleted_results_file_is_refused(data: Path, tmp_path: Path, pii_key: str) -> None:
    out, _, lines = results_trail(data, tmp_path)
    lines.unlink()
    assert_halts_paying_nobody(data, out, "results.parquet", "is missing")


def test_a_results_import_erased_record_and_all_is_caught_by_the_anchor(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    out, import_id, lines = results_trail(data, tmp_path)
    (out / "audit/runs" / f"program={PROGRAM}" / f"run_id={import_id}.parquet").unlink()
    assert_halts_paying_nobody(data, out, "results of a run or import that has no run record")
    shutil.rmtree(lines.parent)  # and its folder too: the anchor names the erased import
    assert_halts_paying_nobody(data, out, "cut back or rewritten")


@pytest.mark.parametrize(
    "moves_before_crash", [0, 1], ids=["before its lines", "before its record"]
)
def test_an_import_killed_while_publishing_is_absent_and_is_recorded_once_when_run_again(
    moves_before_crash: int, data: Path, tmp_path: Path, pii_key: str
) -> None:
    from flows.audit.verify import verify_trail
    from tests.test_crash import Crash, crash_before_move

    out = tmp_path / "out"
    first = run_flow(data, out)
    result, sent = answer(out, first.run_id, tmp_path, {0: "CARD_LOST"})
    before = runs(out).height
    with pytest.MonkeyPatch.context() as armed:
        crash_before_move(armed, moves_before_crash)  # the import publishes lines, then record
        with pytest.raises(Crash):
            record(out, result)
    again = record(out, result)  # recovers what the crash left, then imports
    assert again.run_id is not None and again.states == {"SETTLED": sent.height - 1, "REJECTED": 1}
    assert runs(out).height == before + 1
    assert verify_trail(out)[0] == []
    lines = pl.read_parquet(out / "audit/results/**/*.parquet")
    assert lines.height == sent.height  # each line recorded once
    assert not set(sent["card_id"]) & set(lines.select(pl.all().cast(pl.String)).unpivot()["value"])


def test_a_partitioned_run_re_issues_exactly_what_one_bucket_does(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    """Payments owed again reach the bucket of their person: the same re-issues in 3 buckets."""
    refused = {0: "CARD_CANCELLED", 1: "SYSTEM_ERROR", 2: "SYSTEM_ERROR", 3: "CARD_LOST"}
    reissued, owed = [], []
    for name, split in (("one", {}), ("three", {"partitions": 3, "store": "disk"})):
        out = tmp_path / name
        first = run_flow(data, out)
        replies = tmp_path / f"{name}-replies"
        replies.mkdir()
        result, sent = answer(out, first.run_id, replies, refused)
        record(out, result)
        again = run_flow(data, out, trigger="rerun", reason="re-issue", **split)
        paid = credits(out, again.run_id).select("payment_id", "attempt", "card_id", "amount")
        reissued.append(paid.sort("payment_id"))
        owed.append(
            decisions(out, again.run_id)
            .filter(pl.col("reason_codes").list.contains("PAYMENT_OWED_AGAIN"))
            .select("person_key")
            .sort("person_key")
        )
        assert set(paid["payment_id"]) == set(sent["payment_id"][1:3])
    assert reissued[0].equals(reissued[1])
    assert owed[0].equals(owed[1]) and owed[0].height == 2
