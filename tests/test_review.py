"""The review queue (issue 18): held applications go to an officer and come back decided.

The story holds one office application from outside the household (A0022, 배수지 applied for
by a neighbour); a second file adds another (A0090, 이민호 applied for by the same neighbour).
Both are HELD_FOR_REVIEW. `jiwon review export` writes them to a sheet, an officer fills in
decision, reason and officer, `jiwon review import` records the decisions as a signed ledger
event, and the next run, reading the same enrollment files again, applies them.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from openpyxl import load_workbook

from flows.audit.reviews import decision_word
from flows.audit.verify import verify_trail
from flows.errors import LedgerUntrusted
from tests.support.banktrail import copy_trail
from tests.support.flowrun import decisions, run_flow, runs
from tests.test_cli import jiwon, last_line

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend")]
PROGRAM = "paju-livelihood-2025"
APPROVED, REJECTED = "A0022", "A0090"
EXTRA = (
    "A0090,2025-02-11T10:30:00,870622-1191914,7202021181814,office,local_currency,"
    "9410000000000090,,,"
)
# raw identities of the held beneficiaries and their applicant: never in a sheet or the trail
RAW = ("9410102171716", "941010-2171716", "8706221191914", "7202021181814", "배수지", "이민호")


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory, prefect_backend: None) -> tuple[Path, Path]:
    """A committed run of the story plus A0090: two applications held for review."""
    from tests.conftest import STORY, TEST_KEY

    root = tmp_path_factory.mktemp("held")
    data = root / "data"
    shutil.copytree(STORY / "registry", data / "registry")
    shutil.copytree(STORY / "enrollments", data / "enrollments")
    office = (data / "enrollments" / "enrollments_office.csv").read_bytes()
    header = office.split(b"\n", 1)[0].rstrip(b"\r")
    (data / "enrollments" / "enrollments_review.csv").write_bytes(
        header + b"\r\n" + EXTRA.encode("cp949") + b"\r\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JIWON_PII_KEY", TEST_KEY)
        run_flow(data, root / "out")
    return data, root / "out"


@pytest.fixture
def trail(held: tuple[Path, Path], tmp_path: Path, pii_key: str) -> Iterator[tuple[Path, Path]]:
    """A copy of the held trail (with its anchor) to import into and run again."""
    data, out = held
    yield data, copy_trail(out, tmp_path / "out")


def export(out: Path, to: Path) -> tuple[Path, Path]:
    code, _printed, err = jiwon("review", "export", "--out", out, "--program", PROGRAM, "--to", to)
    assert code == 0, err
    xlsx, csv = sorted(to.glob("*.xlsx"))[-1], sorted(to.glob("*.csv"))[-1]
    return xlsx, csv


def fill_xlsx(exported: Path, target: Path, rows: dict[str, dict[str, Any]]) -> Path:
    """Fill in the exported workbook as an officer would (by application id) and save it."""
    book = load_workbook(exported)
    sheet = book.active
    assert sheet is not None
    names = [str(c.value).rsplit("(", 1)[-1].rstrip(")") for c in sheet[1]]
    column = {n: i + 1 for i, n in enumerate(names)}
    for line in range(2, sheet.max_row + 1):
        application = sheet.cell(line, column["application_id"]).value
        for name, value in rows.get(str(application), {}).items():
            sheet.cell(line, column[name]).value = value
    book.save(target)
    return target


def import_sheet(out: Path, sheet: Path, *extra: str) -> tuple[int, str, str]:
    return jiwon("review", "import", sheet, "--out", out, *extra)


def application(out: Path, run_id: str, application_id: str) -> dict[str, Any]:
    rows = decisions(out, run_id).filter(pl.col("application_id") == application_id)
    assert rows.height == 1
    return rows.row(0, named=True)


def reviews(out: Path) -> pl.DataFrame:
    files = sorted(out.glob("audit/reviews/program=*/run_id=*/reviews.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


DECIDE = {
    APPROVED: {"decision": "approve", "reason": "가족관계증명서 확인", "officer": "kim"},
    REJECTED: {"decision": "Reject ", "reason": "no proof of family", "officer": "lee"},
}


def decided_sheet(out: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Export the queue and fill it in with DECIDE: (exported workbook, filled-in workbook)."""
    xlsx, _ = export(out, tmp_path / "sheets")
    return xlsx, fill_xlsx(xlsx, tmp_path / "filled.xlsx", DECIDE)


def test_held_applications_go_out_in_a_sheet_and_the_next_run_pays_the_approved_one(
    trail: tuple[Path, Path], tmp_path: Path
) -> None:
    data, out = trail
    page = out / "reports" / PROGRAM / "index.html"
    assert 'data-figure="review_queue" data-value="2"' in page.read_text(encoding="utf-8")
    xlsx, _ = export(out, tmp_path / "sheets")
    book = load_workbook(xlsx)
    sheet = book.active
    assert sheet is not None
    titles = [c.value for c in sheet[1]]
    assert "신청번호 (application_id)" in titles and "담당자 (officer)" in titles
    held = sorted(str(sheet.cell(r, 2).value) for r in range(2, sheet.max_row + 1))
    assert held == [APPROVED, REJECTED]
    filled = fill_xlsx(xlsx, tmp_path / "filled.xlsx", DECIDE)
    code, printed, err = import_sheet(out, filled)
    assert code == 0, err
    assert "recorded 2 review decision(s)" in printed and "1 approve, 1 reject" in printed
    second = run_flow(data, out, trigger="rerun", reason="apply the officers' decisions")
    approved = application(out, second.run_id, APPROVED)
    assert (approved["outcome"], approved["rule_id"], approved["amount_krw"]) == (
        "PAID",
        "review.approved",
        100_000,
    )
    rejected = application(out, second.run_id, REJECTED)
    assert (rejected["outcome"], rejected["reason_codes"], rejected["rule_id"]) == (
        "INELIGIBLE",
        ["REVIEW_REJECTED"],
        "review.rejected",
    )
    assert second.total_paid_krw == 100_000
    person = decisions(out, second.run_id).filter(
        pl.col("source_kind") == "registry", pl.col("person_key") == approved["person_key"]
    )
    assert person["outcome"].to_list() == ["PAID"]
    assert verify_trail(out) == ([], 3)
    assert 'data-figure="review_queue" data-value="0"' in page.read_text(encoding="utf-8")
    code, explained, _ = jiwon("audit", "explain", "--out", out, "--rrn", "9410102171716")
    assert code == 0 and "review of application A0022" in explained
    assert "approve by kim (가족관계증명서 확인), from filled.xlsx line 2" in explained
    # both closed now: the queue is empty, and a decision on either is refused
    again, _ = export(out, tmp_path / "later")
    later = load_workbook(again).active
    assert later is not None and later.max_row == 1


def test_the_csv_sheet_is_utf8_with_a_bom_and_round_trips(
    trail: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = trail
    _, csv = export(out, tmp_path / "sheets")
    raw = csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "신청번호 (application_id)".encode() in raw
    sheet = pl.read_csv(io.BytesIO(raw[3:]), infer_schema=False)
    decided = sheet.with_columns(
        pl.when(pl.col("신청번호 (application_id)") == APPROVED)
        .then(pl.lit(v))
        .otherwise(pl.col(c))
        .alias(c)
        for c, v in (
            ("결정: approve 승인 / reject 반려 (decision)", "승인"),
            ("담당자 (officer)", "park"),
        )
    )
    filled = tmp_path / "filled.csv"
    filled.write_bytes(b"\xef\xbb\xbf" + decided.write_csv().encode("utf-8"))
    code, printed, err = import_sheet(out, filled, "--program", PROGRAM)
    assert code == 0, err
    assert "1 approve" in printed and "1 row(s) left blank stay open" in printed
    recorded = reviews(out)
    assert recorded.select("application_id", "decision", "officer", "review_line").rows() == [
        (APPROVED, "approve", "park", 2)
    ]


def test_importing_the_same_sheet_twice_says_so_and_records_nothing(
    trail: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = trail
    _, filled = decided_sheet(out, tmp_path)
    assert import_sheet(out, filled)[0] == 0
    before = runs(out).height
    code, printed, _ = import_sheet(out, filled)
    assert code == 0 and "nothing new to import" in printed and "imported before" in printed
    assert runs(out).height == before


def formula(target: Path, exported: Path) -> Path:
    """Return the sheet with a formula stored in A0022's reason cell."""
    return fill_xlsx(
        exported,
        target,
        {APPROVED: {"decision": "approve", "officer": "kim", "reason": '=HYPERLINK("x")'}},
    )


REFUSALS: list[tuple[str, dict[str, dict[str, Any]], str]] = [
    ("unknown id", {"A9999": {}}, "unknown application id"),
    ("blank officer", {APPROVED: {"decision": "approve", "officer": None}}, "blank officer"),
    ("bad decision", {APPROVED: {"decision": "maybe", "officer": "kim"}}, "neither approve"),
    ("other program", {APPROVED: {"program": "paju-energy-2023"}}, "a row for another program"),
    ("formula", {}, "holds a formula"),
    ("text formula", {APPROVED: {"decision": "approve", "officer": "+kim"}}, "holds a formula"),
    ("duplicate", {"dup": {}}, "appears more than once"),
    (
        "rrn in reason",
        {APPROVED: {"decision": "approve", "officer": "kim", "reason": "941010-2171716 본인 확인"}},
        "registration number",
    ),
    ("closed", {"closed": {}}, "is closed"),
]


@pytest.mark.parametrize(("case", "rows", "fault"), REFUSALS, ids=[c for c, _, _ in REFUSALS])
def test_a_refused_sheet_exits_3_with_one_line_and_records_nothing(
    trail: tuple[Path, Path], tmp_path: Path, case: str, rows: dict[str, Any], fault: str
) -> None:
    _, out = trail
    xlsx, _ = export(out, tmp_path / "sheets")
    target = tmp_path / "filled.xlsx"
    if case == "formula":
        filled = formula(target, xlsx)
    else:
        filled = fill_xlsx(xlsx, target, rows)
        book = load_workbook(filled)
        sheet = book.active
        assert sheet is not None
        extra = {"unknown id": "A9999", "duplicate": APPROVED, "closed": "A0005"}
        if case in extra:
            sheet.append([PROGRAM, extra[case]] + [None] * 9 + ["approve", "ok", "kim", None])
            book.save(filled)
    before = runs(out).height
    code, _, err = import_sheet(out, filled)
    assert code == 3, err
    line = last_line(err)
    assert line.startswith("input rejected: filled.xlsx, line ") and fault in line, line
    assert "Traceback" not in err and "9410102171716" not in err
    assert runs(out).height == before and reviews(out).height == 0


def test_a_sheet_for_another_program_is_refused_by_its_program_option(
    trail: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = trail
    _, filled = decided_sheet(out, tmp_path)
    code, _, err = import_sheet(out, filled, "--program", "paju-energy-2023")
    assert code == 3 and "is the review sheet of program paju-livelihood-2025" in last_line(err)


def test_a_recorded_decision_is_changed_only_by_a_later_one_that_says_it_revises_it(
    trail: tuple[Path, Path], tmp_path: Path
) -> None:
    data, out = trail
    xlsx, _ = export(out, tmp_path / "first")
    assert import_sheet(out, fill_xlsx(xlsx, tmp_path / "one.xlsx", DECIDE))[0] == 0
    first_review = reviews(out)
    # the export shows the recorded decision and its id; deciding again without revises fails
    xlsx, _ = export(out, tmp_path / "second")
    sheet = load_workbook(xlsx).active
    assert sheet is not None
    shown = {str(sheet.cell(r, 2).value): sheet.cell(r, 11).value for r in (2, 3)}
    review_id = shown[APPROVED]
    assert review_id and str(sheet.cell(2, 10).value).startswith(("approve", "reject"))
    change = {APPROVED: {"decision": "reject", "reason": "proof was forged", "officer": "choi"}}
    code, _, err = import_sheet(out, fill_xlsx(xlsx, tmp_path / "two.xlsx", change))
    assert code == 3 and "already has a recorded decision" in last_line(err)
    wrong = {APPROVED: change[APPROVED] | {"revises": "20250101T000000Z-deadbeef"}}
    code, _, err = import_sheet(out, fill_xlsx(xlsx, tmp_path / "three.xlsx", wrong))
    assert code == 3 and "is not the recorded decision" in last_line(err)
    right = {APPROVED: change[APPROVED] | {"revises": review_id}}
    code, _printed, err = import_sheet(out, fill_xlsx(xlsx, tmp_path / "four.xlsx", right))
    assert code == 0, err
    assert reviews(out).height == first_review.height + 1
    second = run_flow(data, out, trigger="rerun", reason="apply the revised decision")
    revised = application(out, second.run_id, APPROVED)
    assert (revised["outcome"], revised["reason_codes"]) == ("INELIGIBLE", ["REVIEW_REJECTED"])
    # applied: the item is closed, and a decision on it is refused even if it says it revises
    closed = {APPROVED: {"decision": "approve", "officer": "kim", "revises": review_id}}
    code, _, err = import_sheet(out, fill_xlsx(xlsx, tmp_path / "five.xlsx", closed))
    assert code == 3 and "is closed" in last_line(err)


@pytest.mark.parametrize("damage", ["edited", "deleted", "orphan"])
def test_a_damaged_reviews_file_halts_the_next_run_and_verify_names_it(
    trail: tuple[Path, Path], tmp_path: Path, damage: str
) -> None:
    data, out = trail
    _, filled = decided_sheet(out, tmp_path)
    assert import_sheet(out, filled)[0] == 0
    (file,) = out.glob("audit/reviews/program=*/run_id=*/reviews.parquet")
    name = str(file.relative_to(out))
    if damage == "edited":  # an officer's rejection turned into an approval
        rows = pl.read_parquet(file).with_columns(decision=pl.lit("approve"))
        rows.write_parquet(file)
    elif damage == "deleted":
        file.unlink()
    else:  # a reviews folder no run record lists
        ghost = file.parent.parent / "run_id=20250101T000000Z-0000dead"
        shutil.copytree(file.parent, ghost)
        name = str(ghost.relative_to(out))
    problems, _ = verify_trail(out)
    assert any(name in p for p in problems), problems
    with pytest.raises(LedgerUntrusted, match=name.replace("=", ".")):
        run_flow(data, out, trigger="rerun", reason="after the damage")


def test_no_raw_identity_in_the_sheets_or_the_trail(
    trail: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = trail
    xlsx, csv = export(out, tmp_path / "sheets")
    assert import_sheet(out, fill_xlsx(xlsx, tmp_path / "filled.xlsx", DECIDE))[0] == 0
    with zipfile.ZipFile(xlsx) as book:
        inside = b"".join(book.read(n) for n in book.namelist()).decode("utf-8")
    (file,) = out.glob("audit/reviews/**/*.parquet")
    text = inside + csv.read_text(encoding="utf-8-sig") + str(pl.read_parquet(file).rows())
    assert "941010-2******" in text and "배*지" in text
    for raw in RAW:
        assert raw not in text


def test_three_buckets_apply_the_decisions_as_one_does(
    trail: tuple[Path, Path], tmp_path: Path
) -> None:
    data, out = trail
    _, filled = decided_sheet(out, tmp_path)
    assert import_sheet(out, filled)[0] == 0
    parts = copy_trail(out, tmp_path / "parts")
    whole = run_flow(data, out, trigger="rerun", reason="one bucket")
    split = run_flow(data, parts, trigger="rerun", reason="three buckets", partitions=3)
    columns = ["source_file", "source_row", "outcome", "reason_codes", "rule_id", "amount_krw"]

    def decided(root: Path, run_id: str) -> pl.DataFrame:
        return decisions(root, run_id).select(columns).sort("source_file", "source_row")

    assert decided(out, whole.run_id).equals(decided(parts, split.run_id))
    assert application(parts, split.run_id, APPROVED)["outcome"] == "PAID"


@pytest.mark.parametrize(
    ("written", "word"),
    [
        ("approve", "approve"),
        (" Approve ", "approve"),
        ("승인", "approve"),
        ("REJECT", "reject"),
        ("반려", "reject"),
        ("yes", None),
        (None, None),
    ],
)
def test_decision_words_accept_case_spaces_and_korean(
    written: str | None, word: str | None
) -> None:
    frame = pl.DataFrame({"decision": [written]}, schema={"decision": pl.String})
    assert frame.select(decision_word())["decision"].to_list() == [word]


def test_review_export_without_a_trail_is_bad_usage(tmp_path: Path) -> None:
    code, _, err = jiwon("review", "export", "--out", tmp_path, "--program", PROGRAM)
    assert code == 2 and "no audit trail" in last_line(err)


def test_check_lines_leaves_blank_rows_open_and_names_each_fault() -> None:
    from flows.audit.reviews import check_lines

    latest = pl.DataFrame(
        {
            "application_id": ["H1", "H2", "P1"],
            "outcome": ["HELD_FOR_REVIEW", "HELD_FOR_REVIEW", "PAID"],
            "person_key": ["k1", "k2", "k3"],
            "run_id": ["R1", "R1", "R1"],
            "reason_codes": [["PROXY_NEEDS_FAMILY_PROOF"]] * 2 + [[]],
        }
    )
    newest = pl.DataFrame(
        {"application_id": ["H2"], "review_run_id": ["V1"], "decision": ["approve"]}
        | {"officer": ["kim"], "review_ids": [["V1"]]}
    )
    rows = [  # line, application_id, decision, officer, revises
        (2, "H1", None, None, None),
        (3, "H1", "approve", "kim", None),
        (4, "H2", "reject", "lee", None),
        (5, "P1", "approve", "kim", None),
        (6, "X9", "approve", "kim", None),
        (7, "H3", "approve", "", None),
    ]
    lines = pl.DataFrame(
        rows, schema=["line", "application_id", "decision", "officer", "revises"], orient="row"
    ).with_columns(program=pl.lit(PROGRAM), reason=pl.lit(None, pl.String), formula=pl.lit(None))
    text = ["application_id", "decision", "officer", "revises", "formula"]
    checked = check_lines(lines.cast(dict.fromkeys(text, pl.String)), latest, newest, PROGRAM)
    assert dict(zip(checked["line"], checked["fault"], strict=True)) == {
        3: "repeated",
        4: "not_revised",
        5: "closed",
        6: "unknown",
        7: "no_officer",
    }


def test_ids_the_trail_holds_are_not_taken_for_an_rrn() -> None:
    """A national-scale application id (13 digits) the trail knows, and a recorded review id
    whose time and hex look like 6 + 7 digits, are accepted; the same shapes unknown are not."""
    from flows.audit.reviews import check_lines

    application, review_id = "A2025123456789", "20250615T101010Z-1234567f"
    earlier = "20250614T101010Z-a2446425"  # revised since: its time and hex look like 6 + 7 digits
    latest = pl.DataFrame(
        {
            "application_id": [application],
            "outcome": ["HELD_FOR_REVIEW"],
            "person_key": ["k1"],
            "run_id": ["R1"],
            "reason_codes": [["PROXY_NEEDS_FAMILY_PROOF"]],
        }
    )
    newest = pl.DataFrame(
        {
            "application_id": [application],
            "review_run_id": [review_id],
            "decision": ["approve"],
            "officer": ["kim"],
            "review_ids": [[earlier, review_id]],
        }
    )

    def fault(application_id: str, revises: str) -> list[Any]:
        lines = pl.DataFrame(
            {
                "line": [2],
                "program": [PROGRAM],
                "application_id": [application_id],
                "decision": ["reject"],
                "reason": ["proof was forged"],
                "officer": ["choi"],
                "revises": [revises],
                "formula": [None],
            },
            schema_overrides={"formula": pl.String},
        )
        return check_lines(lines, latest, newest, PROGRAM)["fault"].to_list()

    assert fault(application, review_id) == [None]
    # an earlier decision's id is the trail's too: refused as not the recorded one, not as an RRN
    assert fault(application, earlier) == ["wrong_revision"]
    assert fault(application, "20250614T101010Z-a2446426") == ["rrn_in_text"]
    assert fault(application, "20250615T101011Z-1234567f") == ["rrn_in_text"]
    assert fault("A2025123456780", review_id) == ["rrn_in_text"]
