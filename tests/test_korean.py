"""Under a Korean locale every command speaks Korean; under LANG=C English, as before (17).

The `jiwon` command is run as an operator runs it (a process, LANG=ko_KR.UTF-8) for the help
texts, which are built when the command starts, and through typer's runner with a Korean
environment for the commands and their error paths (the language is read at each invocation).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from typer.testing import CliRunner

from flows import i18n
from flows.cli import app
from tests.conftest import ROOT

PROGRAM = "paju-livelihood-2025"
HANGUL = re.compile(r"[\uac00-\ud7a3]")
KOREAN = {"LANG": "ko_KR.UTF-8", "LC_ALL": "", "LC_MESSAGES": "", "LANGUAGE": "", "JIWON_LANG": ""}
ENGLISH = {"LANG": "C", "LC_ALL": "", "LC_MESSAGES": "", "LANGUAGE": "", "JIWON_LANG": ""}
runner = CliRunner()


def english_messages() -> list[str]:
    """Return the catalog's English texts long enough to tell, each placeholder-free part."""
    with (i18n.LOCALEDIR / "ko/LC_MESSAGES/jiwon.po").open("rb") as f:
        catalog = read_po(f)
    parts: set[str] = set()
    for m in catalog:
        if m.id and isinstance(m.id, str) and m.string != m.id:
            parts |= {p.strip() for p in re.split(r"\{[^{}]*\}", m.id) if len(p.strip()) >= 14}
    # command lines quoted in a message (`jiwon approve ... --approver NAME`) stay as typed
    return sorted(p for p in parts if "--" not in p and "jiwon " not in p)


ENGLISH_PARTS = english_messages()


def assert_korean(text: str) -> None:
    """The text has Hangul and none of the catalog's English wording (names and codes aside)."""
    assert HANGUL.search(text), text
    leftover = [p for p in ENGLISH_PARTS if p in text]
    assert not leftover, f"English left in Korean output: {leftover}\n{text}"


@pytest.fixture(autouse=True)
def back_to_english(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test switched to, the next test starts in English (os.environ and the module)."""
    monkeypatch.setenv("JIWON_LANG", "en")
    yield
    i18n.use("en")
    i18n.translate_click()


def shell(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `jiwon` in a process of its own with `env` over the test's environment."""
    full = os.environ | env
    for name, value in env.items():
        if not value:
            full.pop(name, None)
    return subprocess.run(
        [str(Path(sys.executable).parent / "jiwon"), *args],
        capture_output=True,
        text=True,
        env=full | {"COLUMNS": "200", "TERMINAL_WIDTH": "200"},
        cwd=ROOT,
        timeout=120,
    )


def jiwon(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args], env=env or KOREAN)
    return result.exit_code, result.stdout, result.stderr


def test_help_is_korean_under_a_korean_locale_and_english_under_lang_c() -> None:
    for args in (["--help"], ["run", "--help"], ["audit", "verify", "--help"]):
        korean = shell(*args, env=KOREAN)
        assert korean.returncode == 0, korean.stderr
        assert_korean(korean.stdout)
    english = shell("--help", env=ENGLISH)
    assert "Read and check the audit trail." in english.stdout
    assert "Show this message and exit." in english.stdout
    assert "감사 기록을 읽고 점검합니다." not in english.stdout
    assert "감사 기록을 읽고 점검합니다." in shell("--lang", "ko", "--help", env=ENGLISH).stdout


def test_usage_errors_are_korean(tmp_path: Path) -> None:
    missing = shell("run", "--program", PROGRAM, env=KOREAN)
    assert missing.returncode == 2
    assert "옵션 '--registry'이(가) 빠졌습니다." in missing.stderr
    assert missing.stderr.startswith("사용법: jiwon run")
    code, _, err = jiwon("audit", "explain", "--out", tmp_path)
    assert (
        code == 2
        and err.strip() == "잘못된 사용: --rrn과 --payment-id 중 정확히 하나만 지정하십시오"
    )
    code, _, err = jiwon("audit", "verify", "--out", tmp_path / "nothing")
    assert code == 2 and "에 감사 기록이 없습니다. 이전 실행의 출력 폴더를 지정하십시오" in err
    assert_korean(err)


def run_args(data: Path, out: Path) -> list[str | Path]:
    return [
        "run", "--program", PROGRAM, "--registry", data / "registry",
        "--enrollments", data / "enrollments", "--out", out, "--run-month", "2025-03",
    ]  # fmt: skip


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_backend")
def test_a_rejected_input_is_korean_and_english_under_lang_c(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    (story / "enrollments/enrollments_online.csv").write_text("application_id\nA1\n")
    code, _, err = jiwon(*run_args(story, tmp_path / "ko"))
    line = err.strip().splitlines()[-1]
    assert code == 3
    assert line.startswith(
        "입력 파일을 거부했습니다: enrollments_online.csv, 1번째 줄: 필수 열 applied_at (신청일시)"
    )
    assert "조치: " in line
    assert_korean(line)
    code, _, err = jiwon(*run_args(story, tmp_path / "en"), env=ENGLISH)
    assert code == 3
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            "input rejected: enrollments_online.csv, line 1: is missing the required column(s) "
        )
    )


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_backend")
def test_a_run_and_the_commands_after_it_speak_korean(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    code, text, err = jiwon(*run_args(story, out))
    assert code == 0, err
    assert "총 지급액: 31,400,000원, 지급 314건" in text
    assert "[committed]" in text  # the status is data: it keeps its code
    assert_korean(text)
    report = next(out.glob("reports/*/*/summary.md")).read_text(encoding="utf-8")
    assert "- 총 지급액: **31,400,000원**" in report and "2025년 3월" in report
    assert_korean(report)
    html = next(out.glob("reports/*/*/report.html")).read_text(encoding="utf-8")
    assert "31,400,000원" in html and "격리" in html

    checks: list[tuple[list[str | Path], str]] = [
        (["audit", "verify", "--out", out], "감사 검증: 실행 1건 점검"),
        (["audit", "explain", "--out", out, "--rrn", "900404-2222224"], "지급됨 100,000원"),
        (["results", "status", "--program", PROGRAM, "--out", out], "기준 지급 현황"),
        (["approve", "--program", PROGRAM, "--out", out], "실행과 송출 상태"),
        (["review", "export", "--program", PROGRAM, "--out", out], "담당 공무원의 결정을"),
    ]
    for args, expected in checks:
        code, text, err = jiwon(*args)
        assert code == 0, err
        assert expected in text, text
        assert_korean(text)

    code, text, _ = jiwon(*checks[1][0], env=ENGLISH)
    assert code == 0 and "PAID 100,000 won by run" in text


def test_amounts_and_dates_for_people() -> None:
    import datetime as dt

    i18n.use("ko")
    assert i18n.format_won(100_000) == "100,000원"
    assert i18n.format_date(dt.date(2025, 3, 1)) == "2025년 3월 1일"
    assert i18n.format_month("2025-03") == "2025년 3월"
    i18n.use("en")
    assert i18n.format_won(100_000) == "100,000 won"
    assert i18n.format_date("2025-03-01") == "2025-03-01"
    with pytest.raises(TypeError):
        i18n.format_won(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "argv", "language"),
    [
        ({"LANG": "ko_KR.UTF-8"}, [], "ko"),
        ({"LC_ALL": "ko_KR.UTF-8", "LANG": "C"}, [], "ko"),
        ({"LANG": "C"}, [], "en"),
        ({}, [], "en"),
        ({"LANG": "C"}, ["--lang", "ko"], "ko"),
        ({"LANG": "ko_KR.UTF-8"}, ["--lang=en"], "en"),
        ({"LANG": "C", "JIWON_LANG": "ko"}, [], "ko"),
    ],
)
def test_the_language_comes_from_lang_option_then_jiwon_lang_then_the_locale(
    env: dict[str, str], argv: list[str], language: str
) -> None:
    assert i18n.language_from(argv, env) == language


def test_audit_anchor_still_recognises_a_missing_anchor_in_korean() -> None:
    """`jiwon audit anchor` passes over verify's 'there is no anchor' line by its opening words."""
    from flows.audit.anchor import NO_ANCHOR

    i18n.use("ko")
    opening = i18n._(NO_ANCHOR).split("{", 1)[0]
    assert opening == "앵커가 없습니다: "
    i18n.use("en")
    assert i18n._(NO_ANCHOR).split("{", 1)[0] == "there is no anchor at "
