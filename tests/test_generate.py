"""Synthetic population generator: determinism, realism of the clean data, injected faults."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from fixtures.generate import (
    ENROLLMENT_COLUMNS,
    FOREIGN_ORIGINS,
    FOREIGN_WINDOW,
    KOREAN_HEADERS,
    KOREAN_WINDOW,
    NO_FAULTS,
    REGISTRY_COLUMNS,
    Faults,
    Population,
    generate_population,
    load_areas,
    write_population,
)

REF = dt.date(2024, 12, 26)
ROWS = 4_000
WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def clean() -> Population:
    return generate_population(ROWS, seed=11, faults=NO_FAULTS)


@pytest.fixture(scope="module")
def faulty() -> Population:
    return generate_population(ROWS, seed=11)


def digits(col: str) -> pl.Expr:
    return pl.col(col).str.replace_all("-", "", literal=True)


def registry_people(pop: Population) -> pl.DataFrame:
    """Registry with plain RRN digits, parsed birth date and exact age on REF."""
    born = pl.col("birth_date").str.to_date()
    had_birthday = (born.dt.month() < REF.month) | (
        (born.dt.month() == REF.month) & (born.dt.day() <= REF.day)
    )
    return pop.registry.with_columns(
        rrn13=digits("rrn"),
        born=born,
        age=REF.year - born.dt.year() - pl.when(had_birthday).then(0).otherwise(1),
    )


def expected_check_digit(rrn13: str) -> int:
    total = sum(int(d) * w for d, w in zip(rrn13[:12], WEIGHTS, strict=True))
    base = 13 if rrn13[6] in "5678" else 11
    return (base - total % 11) % 10


def test_generate_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    first = write_population(generate_population(1_500, seed=5), tmp_path / "a")
    second = write_population(generate_population(1_500, seed=5), tmp_path / "b")
    other = generate_population(1_500, seed=6)
    for kind in ("registry", "enrollments"):
        assert [p.name for p in first[kind]] == [p.name for p in second[kind]]
        for a, b in zip(first[kind], second[kind], strict=True):
            assert a.read_bytes() == b.read_bytes()
    assert not other.registry.equals(generate_population(1_500, seed=5).registry)


def test_generate_writes_contract_columns_as_strings(clean: Population) -> None:
    assert clean.registry.columns == list(REGISTRY_COLUMNS)
    assert clean.enrollments.columns == list(ENROLLMENT_COLUMNS)
    assert set(clean.registry.dtypes) == {pl.String}
    assert set(clean.enrollments.dtypes) == {pl.String}
    assert clean.registry.height == ROWS
    assert clean.registry["as_of"].unique().to_list() == [REF.isoformat()]


def test_generate_every_household_has_exactly_one_adult_head(clean: Population) -> None:
    people = registry_people(clean)
    per_household = people.group_by("household_id").agg(
        heads=(pl.col("relation") == "본인").sum(),
        adult_heads=((pl.col("relation") == "본인") & (pl.col("age") >= 19)).sum(),
        spouses=(pl.col("relation") == "배우자").sum(),
        adult_spouses=((pl.col("relation") == "배우자") & (pl.col("age") >= 19)).sum(),
    )
    assert (per_household["heads"] == 1).all()
    assert (per_household["adult_heads"] == 1).all()
    assert (per_household["spouses"] <= 1).all()
    assert (per_household["spouses"] == per_household["adult_spouses"]).all()


def test_generate_household_members_share_admin_code_and_address(clean: Population) -> None:
    shared = (
        clean.registry.filter(pl.col("status") != "거주불명")
        .group_by("household_id")
        .agg(
            pl.col("admin_code").n_unique().alias("codes"),
            pl.col("address").n_unique().alias("addresses"),
        )
    )
    assert (shared["codes"] == 1).all() and (shared["addresses"] == 1).all()
    unknown = clean.registry.filter(pl.col("status") == "거주불명")
    assert unknown.height > 0 and unknown["address"].null_count() == unknown.height


def test_generate_household_sizes_and_minors_are_realistic(clean: Population) -> None:
    sizes = clean.registry.group_by("household_id").len()["len"]
    assert 0.30 < (sizes == 1).mean() < 0.40
    assert 0.23 < (sizes == 2).mean() < 0.33
    assert (sizes >= 5).mean() < 0.08
    ages = registry_people(clean)["age"]
    assert 0.10 < (ages < 19).mean() < 0.22
    assert 0.30 < ages.is_between(40, 65).mean() < 0.50
    assert ages.min() >= 0 and ages.max() <= 100


def test_generate_rrns_are_unique_and_agree_with_birth_date(clean: Population) -> None:
    people = registry_people(clean)
    assert people["rrn13"].str.contains(r"^\d{13}$").all()
    assert people["rrn13"].n_unique() == people.height
    assert (people["rrn13"].str.slice(0, 6) == people["born"].dt.strftime("%y%m%d")).all()
    hyphenated = clean.registry["rrn"].str.contains("-").mean()
    assert 0.6 < hyphenated < 0.8
    outsiders = clean.enrollments.filter(~digits("rrn").is_in(people["rrn13"].implode()))
    assert outsiders.height > 0  # applications from people not in the registry


def test_generate_old_scheme_rrns_have_valid_check_digits(clean: Population) -> None:
    people = registry_people(clean)
    old = people.filter(pl.col("born") < dt.date(2020, 10, 5))["rrn13"].to_list()
    assert len(old) > ROWS * 0.9
    assert all(int(r[12]) == expected_check_digit(r) for r in old)
    new = people.filter(pl.col("born") >= dt.date(2020, 10, 5))["rrn13"].to_list()
    assert new and any(int(r[12]) != expected_check_digit(r) for r in new)


def test_generate_rrn_digit7_matches_birth_century_sex_and_nationality(clean: Population) -> None:
    people = registry_people(clean).with_columns(s=pl.col("rrn13").str.slice(6, 1).cast(pl.Int8))
    century_2000 = people["born"].dt.year() >= 2000
    assert (people["s"].is_in([3, 4, 7, 8]) == century_2000).all()
    assert (people["s"].is_in([5, 6, 7, 8]) == (people["nationality"] == "외국인")).all()
    male = people.filter(pl.col("relation").is_in(["부", "손자"]))["s"]
    female = people.filter(pl.col("relation").is_in(["모", "손녀"]))["s"]
    assert (male % 2 == 1).all() and (female % 2 == 0).all()
    couples = (
        people.filter(pl.col("relation").is_in(["본인", "배우자"]))
        .group_by("household_id")
        .agg((pl.col("s") % 2).n_unique().alias("sexes"), pl.len())
    )
    assert (couples.filter(pl.col("len") == 2)["sexes"] == 2).all()


def test_generate_foreigners_are_few_with_a_real_visa_mix(clean: Population) -> None:
    registry = clean.registry
    foreign = registry.filter(pl.col("nationality") == "외국인")
    assert 0.01 < foreign.height / registry.height < 0.03
    assert foreign["visa_type"].null_count() == 0
    assert registry.filter(pl.col("nationality") == "내국인")["visa_type"].null_count() == (
        registry.height - foreign.height
    )
    settled = foreign["visa_type"].is_in(["F-5", "F-6", "F-2-1"]).mean()
    assert 0.35 < settled < 0.7


def test_generate_foreign_names_are_cp949_encodable() -> None:
    for _, families, givens in FOREIGN_ORIGINS:
        for roman, hangul in (*families, *givens):
            (roman + hangul).encode("cp949")
            hangul.encode("euc_kr")  # even the strict 2,350-syllable set


def test_generate_dates_never_pass_as_of(clean: Population) -> None:
    people = registry_people(clean).with_columns(
        reg=pl.col("registered_on").str.to_date(), changed=pl.col("status_changed_on").str.to_date()
    )
    assert (people["reg"] <= REF).all() and (people["reg"] >= people["born"]).all()
    changes = people["status"].is_in(["사망", "말소", "거주불명"])
    assert (people["changed"].is_not_null() == changes).all()
    assert (people["changed"].drop_nulls() <= REF).all()


def test_generate_uptake_is_about_94_percent_of_eligible(clean: Population) -> None:
    people = registry_people(clean)
    settled = pl.col("visa_type").is_in(["F-5", "F-6", "F-2-1"])
    eligible = people.filter(
        (pl.col("status") == "거주") & ((pl.col("nationality") == "내국인") | settled)
    )
    applied = digits("rrn").unique().implode()
    share = (
        eligible.filter(pl.col("rrn13").is_in(clean.enrollments.select(applied).item())).height
        / eligible.height
    )
    assert 0.92 < share < 0.965
    ineligible = people.filter(~pl.col("rrn13").is_in(eligible["rrn13"].implode()))
    ineligible_applied = ineligible.filter(
        pl.col("rrn13").is_in(clean.enrollments.select(applied).item())
    ).height
    assert 0 < ineligible_applied < ineligible.height * 0.3


def test_generate_minor_applications_come_from_head_or_spouse(clean: Population) -> None:
    people = registry_people(clean)
    proxies = people.filter(pl.col("relation").is_in(["본인", "배우자"])).select(
        "household_id", proxy=pl.col("rrn13")
    )
    apps = clean.enrollments.with_columns(rrn13=digits("rrn"), applicant=digits("applicant_rrn"))
    minors = apps.join(
        people.filter(pl.col("age") < 19).select("rrn13", "household_id"), on="rrn13"
    )
    assert minors.height > 0
    allowed = minors.join(proxies, on="household_id").filter(pl.col("proxy") == pl.col("applicant"))
    assert allowed["application_id"].n_unique() == minors.height
    adults = apps.join(
        people.filter(pl.col("age") >= 19).select("rrn13", "household_id"), on="rrn13"
    )
    by_proxy = adults.filter(pl.col("applicant") != pl.col("rrn13"))
    assert (by_proxy["channel"] == "office").all()
    heads = people.filter(pl.col("relation") == "본인").select("household_id", head="rrn13")
    joined = by_proxy.join(heads, on="household_id")
    assert joined.height == by_proxy.height
    assert (joined["head"] == joined["applicant"]).all()


def test_generate_applications_fall_in_their_window(clean: Population) -> None:
    nationality = registry_people(clean).select("rrn13", "nationality")
    apps = clean.enrollments.with_columns(
        rrn13=digits("rrn"),
        at=pl.col("applied_at").str.to_datetime("%Y-%m-%dT%H:%M:%S"),
    ).join(nationality, on="rrn13", how="left")
    foreign = apps["nationality"] == "외국인"
    day = apps["at"].dt.date()
    korean_ok = day.is_between(*KOREAN_WINDOW)
    foreign_ok = day.is_between(*FOREIGN_WINDOW)
    assert foreign_ok.zip_with(foreign, korean_ok).all()
    office = apps.filter(pl.col("channel") == "office")["at"].dt.hour()
    assert office.is_between(9, 21).all()
    assert (apps.filter(foreign)["channel"] == "office").all()
    first_two_weeks = day.is_between(KOREAN_WINDOW[0], KOREAN_WINDOW[0] + dt.timedelta(13))
    assert first_two_weeks.mean() > 0.6
    assert 0.65 < (apps["channel"] == "online").mean() < 0.85


def test_generate_payout_fields_match_the_payout_kind(clean: Population) -> None:
    apps = clean.enrollments
    card = apps.filter(pl.col("payout") == "local_currency")
    bank = apps.filter(pl.col("payout") == "bank")
    assert card.height > 0.98 * apps.height and bank.height > 0
    assert card["card_id"].str.contains(r"^9410\d{12}$").all()
    assert (
        card.select(
            pl.sum_horizontal(pl.col("bank_code", "account_no", "account_holder").null_count())
        ).item()
        == 3 * card.height
    )
    assert bank["card_id"].null_count() == bank.height
    assert bank["account_no"].str.replace_all("-", "").str.contains(r"^\d{10,14}$").all()
    assert (
        bank["bank_code"]
        .is_in(
            pl.read_csv(Path("rules/banks.csv"), schema_overrides={"bank_code": pl.String})[
                "bank_code"
            ].implode()
        )
        .all()
    )
    assert bank["account_holder"].null_count() == 0
    assert apps["application_id"].str.contains(r"^A2025\d{8}$").all()
    assert apps["application_id"].n_unique() == apps.height


def test_generate_registry_files_are_split_by_admin_code(clean: Population, tmp_path: Path) -> None:
    paths = write_population(clean, tmp_path)
    codes = set(load_areas()["admin_code"])
    names = {p.name for p in paths["registry"]}
    assert names <= {f"registry_{c}.csv" for c in codes} and len(names) >= 15
    for path in paths["registry"]:
        part = pl.read_csv(path, infer_schema=False)
        assert part["admin_code"].unique().to_list() == [path.stem.removeprefix("registry_")]
        assert part.columns == list(REGISTRY_COLUMNS)
        heads_first = (
            part.with_row_index()
            .group_by("household_id")
            .agg(pl.col("relation").sort_by("index").first())
        )
        assert (heads_first["relation"] == "본인").all()
    assert sorted(p.name for p in paths["enrollments"]) == [
        "enrollments_office.csv",
        "enrollments_online.csv",
    ]
    rows = sum(pl.read_csv(p, infer_schema=False).height for p in paths["registry"])
    assert rows == clean.registry.height
    assert b"\r\n" not in paths["registry"][0].read_bytes()


def test_generate_cp949_files_use_korean_headers_and_decode(
    clean: Population, tmp_path: Path
) -> None:
    utf8 = write_population(clean, tmp_path / "utf8")
    cp949 = write_population(clean, tmp_path / "cp949", encoding="cp949")
    for kind in ("registry", "enrollments"):
        for plain, korean in zip(utf8[kind], cp949[kind], strict=True):
            raw = korean.read_bytes()
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
            text = raw.decode("cp949")
            assert text.splitlines()[0] == ",".join(KOREAN_HEADERS[kind])
            assert text.count("\r\n") == text.count("\n")
            body = text.split("\r\n", 1)[1].replace("\r\n", "\n")
            assert body == plain.read_text(encoding="utf-8").split("\n", 1)[1]


def test_generate_injects_duplicate_records_across_files(faulty: Population) -> None:
    registry = faulty.registry.with_columns(file=faulty.registry_file)
    assert registry.height == ROWS + round(0.002 * ROWS)
    repeated = registry.filter(pl.col("rrn").is_duplicated())
    assert repeated.height == 2 * round(0.002 * ROWS)
    per_rrn = repeated.group_by("rrn").agg(
        pl.col("file").n_unique(), pl.struct(REGISTRY_COLUMNS).n_unique().alias("rows")
    )
    assert (per_rrn["file"] == 2).all() and (per_rrn["rows"] == 1).all()


def test_generate_keeps_malformed_registry_rows_under_half_a_percent(faulty: Population) -> None:
    codes = load_areas()["admin_code"].implode()
    bad = faulty.registry.filter(
        ~pl.col("rrn").str.contains(r"^\d{6}-?\d{7}$")
        | pl.col("birth_date").str.to_date(strict=False).is_null()
        | pl.col("name").is_null()
        | ~pl.col("admin_code").is_in(codes)
        | ~pl.col("status").is_in(["거주", "거주불명", "재외국민", "사망", "말소"])
    )
    assert 0 < bad.height <= 0.005 * faulty.registry.height


def test_generate_injects_malformed_and_outside_window_applications(faulty: Population) -> None:
    apps = faulty.enrollments
    broken = apps.filter(
        pl.col("applied_at").str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False).is_null()
        | ~pl.col("channel").is_in(["online", "office"])
        | pl.col("rrn").is_null()
        | (pl.col("card_id").str.len_chars() == 15)
    )
    assert 0 < broken.height <= 0.005 * apps.height
    day = pl.col("applied_at").str.slice(0, 10)
    outside = apps.filter(
        ~day.is_between(pl.lit(KOREAN_WINDOW[0].isoformat()), pl.lit(FOREIGN_WINDOW[1].isoformat()))
    )
    assert outside.height > 0


def test_generate_duplicate_applications_are_later_with_new_ids(faulty: Population) -> None:
    apps = faulty.enrollments.filter(pl.col("rrn").is_not_null()).with_columns(rrn13=digits("rrn"))
    twice = apps.filter(pl.col("rrn13").is_duplicated()).sort("applied_at")
    assert twice["rrn13"].n_unique() >= 0.005 * apps.height
    pairs = twice.group_by("rrn13", maintain_order=True).agg(
        pl.col("application_id").first().alias("first_id"),
        pl.col("application_id").last().alias("last_id"),
        pl.col("applied_at").first().alias("first_at"),
        pl.col("applied_at").last().alias("last_at"),
    )
    assert (pairs["first_id"] != pairs["last_id"]).all()
    assert (pairs["first_at"] < pairs["last_at"]).all()


def test_generate_without_faults_has_no_duplicates_or_broken_rows(clean: Population) -> None:
    assert clean.registry["rrn"].is_duplicated().sum() == 0
    assert clean.enrollments.select(digits("rrn").is_duplicated().sum()).item() == 0
    assert clean.enrollments["channel"].is_in(["online", "office"]).all()
    assert clean.registry["name"].null_count() == 0


def test_generate_rejects_an_empty_population() -> None:
    with pytest.raises(ValueError, match="rows"):
        generate_population(0)


def test_generate_small_populations_still_work(tmp_path: Path) -> None:
    pop = generate_population(3, seed=1, faults=Faults(1.0, 1.0, 0.5, 0.5))
    assert pop.registry.height == 6
    written = write_population(pop, tmp_path)
    assert sum(pl.read_csv(p, infer_schema=False).height for p in written["registry"]) == 6


def test_generate_writes_by_admin_code_and_channel_without_file_columns(
    clean: Population, tmp_path: Path
) -> None:
    bare = Population(clean.registry, clean.enrollments)
    written = write_population(bare, tmp_path)
    assert {p.name for p in written["enrollments"]} == {
        "enrollments_office.csv",
        "enrollments_online.csv",
    }
    for path in written["registry"]:
        codes = pl.read_csv(path, infer_schema=False)["admin_code"].unique().to_list()
        assert codes == [path.stem.removeprefix("registry_")]
