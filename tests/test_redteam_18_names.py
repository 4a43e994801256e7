"""Red team (issue 18): four eyes must hold for names that differ only in how they are written.

`release.same_person` compares names with whitespace collapsed and casefold only: full-width
letters, NFD Hangul, zero-width characters and no-break spaces make one person two.
"""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path

import pytest
import yaml

from flows.audit import release
from flows.errors import RunHalted
from flows.inputs.ledger import run_records
from flows.run.approve import ApproveParams, approve_release
from rules.program import PROGRAMS_DIR
from tests.support.flowrun import run_flow

PROGRAM = "paju-livelihood-2025"

NFC = "김민수"
VARIANTS = [
    ("kim", "ｋｉｍ"),  # full-width Latin
    ("kim", "ＫＩＭ"),
    ("kim", "k\u200bim"),  # zero-width space
    ("kim", "k\u200dim"),  # zero-width joiner
    ("kim", "\ufeffkim"),  # BOM / zero-width no-break space
    ("kim", "kim\u00ad"),  # soft hyphen
    (NFC, unicodedata.normalize("NFD", NFC)),  # NFC vs NFD Hangul
    (NFC, "김민수\u200b"),
    ("park lee", "park\u3000lee"),  # ideographic space (handled by split: control case)
    ("kim", "kım"),  # dotless i: a different letter, should NOT be merged (control, may differ)
]


@pytest.mark.parametrize(("a", "b"), VARIANTS[:8], ids=[repr(b) for _, b in VARIANTS[:8]])
def test_same_person_sees_through_unicode_variants(a: str, b: str) -> None:
    assert release.same_person(a, b), f"{a!r} and {b!r} are shown alike but counted as two"


@pytest.fixture
def data(story: Path, pii_key: str) -> Path:
    return story


def approve(out: Path, run_id: str, who: str, programs: Path | None = None) -> object:
    return approve_release(
        ApproveParams(program=PROGRAM, out=out, run_id=run_id, approver=who, programs_dir=programs)
    )


def test_the_operator_approves_their_own_run_with_full_width_letters(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out, operator="kim")
    try:
        done = approve(out, first.run_id, "ｋｉｍ")
    except RunHalted:
        return  # refused: four eyes held
    released = (out / "outbox" / PROGRAM / first.run_id).is_dir()
    pytest.fail(
        f"the operator kim released their own run as 'ｋｉｍ': {done.release}, outbox {released}"  # type: ignore[attr-defined]
    )


def test_the_operator_approves_their_own_run_with_nfd_hangul(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out, operator=NFC)
    with pytest.raises(RunHalted, match="four eyes"):
        approve(out, first.run_id, unicodedata.normalize("NFD", NFC))
    assert not (out / "outbox" / PROGRAM / first.run_id).exists()


def test_one_approver_gives_both_approvals_with_a_zero_width_space(
    data: Path, tmp_path: Path
) -> None:
    programs = tmp_path / "programs"
    shutil.copytree(PROGRAMS_DIR, programs)
    path = programs / PROGRAM / "program.yaml"
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    body["approval"] = {"two_approvers_above_krw": 0}
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "out"
    first = run_flow(data, out, programs_dir=programs)
    approve(out, first.run_id, "park", programs)
    with pytest.raises(RunHalted, match="already approved"):
        approve(out, first.run_id, "park\u200b", programs)
    state = release.walk(run_records(out.resolve(), PROGRAM))[first.run_id]
    assert state.release == release.PENDING, state.approvers
    assert not (out / "outbox" / PROGRAM / first.run_id).exists()
