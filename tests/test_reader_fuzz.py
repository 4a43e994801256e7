"""Properties of the reader and the row checks (hypothesis).

- Random bytes and truncated files never crash the reader: it reads them, or rejects them with
  a one-line InputRejected naming the file; a truncated file is never read as a partial row.
- Every row the generator makes without faults passes validation.
- Any single-digit change to a valid old-scheme RRN is flagged by the checksum warning, except
  the published formula's own blind spot (weighted sums 0 and 10 mod 11 give one check digit).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fixtures.generate import NO_FAULTS, generate_population
from flows.checks import rrn as rrn_expr
from flows.checks import validate
from flows.errors import InputRejected
from flows.inputs.ingest import Delivery, read_file
from rules.program import load_program
from rules.reference import bank_codes, vocabulary
from schemas.enrollment import enrollment_schema
from schemas.registry import registry_schema
from tests.conftest import STORY
from tests.support.frames import W, checked_registry, person, rrn

PROGRAM = load_program("paju-livelihood-2025")
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SOURCES = {
    "utf8": STORY / "registry" / "registry_unjeong.csv",
    "parquet": STORY / "registry" / "registry_geumchon.parquet",
}
CP949 = (
    pl.read_csv(SOURCES["utf8"], infer_schema=False)
    .write_csv(line_terminator="\r\n")
    .encode("cp949")
)


def read_or_reject(path: Path) -> pl.DataFrame | None:
    """Read `path` as a registry file; return None when it was rejected with a clear message."""
    try:
        return read_file(path, "registry")[0]
    except InputRejected as e:
        message = str(e)
        assert "\n" not in message and message.startswith(f"input rejected: {path.name}")
        assert e.action, "a rejection says what to do"
        return None


@FUZZ
@given(raw=st.binary(max_size=600), suffix=st.sampled_from([".csv", ".parquet"]))
def test_random_bytes_are_read_or_rejected_with_one_line(
    tmp_path: Path, raw: bytes, suffix: str
) -> None:
    path = tmp_path / f"random{suffix}"
    path.write_bytes(raw)
    read_or_reject(path)


@FUZZ
@given(header=st.text(min_size=1, max_size=80), body=st.text(max_size=300))
def test_random_text_after_any_header_is_read_or_rejected(
    tmp_path: Path, header: str, body: str
) -> None:
    path = tmp_path / "text.csv"
    path.write_bytes(f"{header}\n{body}".encode())
    read_or_reject(path)


@FUZZ
@given(source=st.sampled_from(["utf8", "cp949", "parquet"]), cut=st.floats(0, 1))
def test_a_truncated_file_is_rejected_or_read_as_whole_rows_only(
    tmp_path: Path, source: str, cut: float
) -> None:
    raw = CP949 if source == "cp949" else SOURCES[source].read_bytes()
    end = int(len(raw) * cut)
    assume(end < len(raw))
    path = tmp_path / ("cut.parquet" if source == "parquet" else "cut.csv")
    path.write_bytes(raw[:end])
    frame = read_or_reject(path)
    if frame is not None:  # cut right after a line ending: the rows read are whole rows
        whole = read_file(SOURCES["utf8"] if source == "cp949" else SOURCES[source], "registry")[0]
        assert frame.drop("source_file", "source_sha256").equals(
            whole.head(frame.height).drop("source_file", "source_sha256")
        )


@settings(max_examples=8, deadline=None)
@given(rows=st.integers(20, 400), seed=st.integers(0, 2**16))
def test_every_row_the_generator_makes_without_faults_passes_validation(
    rows: int, seed: int
) -> None:
    population = generate_population(rows, seed=seed, faults=NO_FAULTS)
    registry = delivered("registry", population.registry)
    enrollment = delivered("enrollment", population.enrollments)
    checked, report = validate.validate_registry(
        registry,
        registry_schema(PROGRAM.admin_codes(), vocabulary()),
        vocabulary(),
        PROGRAM.reference_date,
        True,
    )
    assert report.height == 0 and not checked["quarantined"].any()
    assert checked["warning_codes"].list.len().sum() == 0  # generated check digits are valid
    checked, report = validate.validate_enrollments(
        enrollment, enrollment_schema(bank_codes(), vocabulary())
    )
    assert report.height == 0 and not checked["quarantined"].any()


def delivered(kind: str, frame: pl.DataFrame) -> Delivery:
    """Wrap generated rows as one delivered file."""
    return Delivery(
        kind,  # type: ignore[arg-type]
        frame.with_columns(
            source_kind=pl.lit(kind),
            source_file=pl.lit(f"{kind}.csv"),
            source_sha256=pl.lit("0" * 64),
            source_row=pl.int_range(1, frame.height + 1, dtype=pl.Int64),
        ),
    )


def residue(number: str) -> int:
    """Return the weighted sum of the first 12 digits modulo 11 (DOMAIN.md)."""
    return sum(int(d) * w for d, w in zip(number, W, strict=False)) % 11


GROUP = {d: "foreign" if d in "5678" else "korean" for d in "0123456789"}


@settings(max_examples=300, deadline=None)
@given(
    born=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2020, 10, 4)),
    foreign=st.booleans(),
    male=st.booleans(),
    middle=st.from_regex(r"\A[0-9]{5}\Z"),
    position=st.integers(0, 12),
    delta=st.integers(1, 9),
)
def test_any_single_digit_change_to_a_valid_old_scheme_rrn_is_flagged_but_the_schemes_blind_spot(
    born: dt.date, foreign: bool, male: bool, middle: str, position: int, delta: int
) -> None:
    """A change of one digit moves the weighted sum mod 11 (weights 2-9 and 11 are coprime), so
    the check digit disagrees, except when the sum moves between residues 0 and 10: the
    published formula maps both to the same check digit (1, or 3 for foreigners). A change of
    digit 7 between Korean and foreign codes is caught by the nationality check instead."""
    sex = ("5" if male else "6") if foreign else ("1" if male else "2")
    if born.year >= 2000:
        sex = str(int(sex) + 2)
    valid = rrn(born.strftime("%y%m%d"), sex, middle)
    digits = list(valid)
    digits[position] = str((int(digits[position]) + delta) % 10)
    changed = "".join(digits)
    assume(GROUP[changed[6]] == GROUP[valid[6]])
    frame = pl.DataFrame({"rrn": [valid, changed]}).with_columns(
        p_rrn_birth=pl.lit(born, dtype=pl.Date)  # the old scheme applies to this person
    )
    flagged = frame.select(rrn_expr.checksum_warning("rrn").alias("flag"))["flag"].to_list()
    blind_spot = {residue(valid), residue(changed)} == {0, 10}
    assert flagged == [False, not blind_spot]


def test_the_check_digit_blind_spot_is_real_for_the_published_formula() -> None:
    valid, changed = "5209032335151", "5209032335131"  # digit 12 changed by 8
    assert {residue(valid), residue(changed)} == {0, 10}
    frame = pl.DataFrame({"rrn": [valid, changed]}).with_columns(
        p_rrn_birth=pl.lit(dt.date(1952, 9, 3))
    )
    assert frame.select(rrn_expr.checksum_warning("rrn").alias("flag"))["flag"].to_list() == [
        False,
        False,
    ]


def test_a_changed_digit_reaches_the_row_as_a_warning_not_a_rejection() -> None:
    valid = rrn("750312", "1")
    changed = valid[:8] + str((int(valid[8]) + 3) % 10) + valid[9:]
    frame = checked_registry([person(valid), person(changed, household="2")])
    assert frame["quarantined"].to_list() == [False, False]
    assert frame["warning_codes"].to_list() == [[], ["RRN_CHECKSUM_MISMATCH"]]


@pytest.mark.parametrize("position", range(7, 13))
def test_the_checksum_is_not_checked_for_people_born_from_2020_10_05(position: int) -> None:
    digits = list(rrn("201005", "3"))
    digits[position] = str((int(digits[position]) + 1) % 10)
    frame = checked_registry([person("".join(digits))])
    assert frame["quarantined"].to_list() == [False]
    assert frame["warning_codes"].to_list() == [[]]
