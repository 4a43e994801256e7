"""National administrative codes as data: 시도 and 시군구 lists, and the 행정동 list from them.

`rules/lists/sido.csv` and `rules/lists/sigungu.csv` (reference lists with a `code` column, the
format programs name in conditions) are the source; `rules/cities/national.csv` is derived from
them (plus Paju's real codes from `rules/cities/paju.csv`) by ``python -m rules.admin_codes`` and
committed, so a national program points at it with ``admin_codes_from: {city: national}``
exactly as Paju's program points at ``{city: paju}``. A test checks that the committed file equals
what this module builds.
Which parts are real, remembered or synthetic: rules/cities/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

RULES_DIR = Path(__file__).parent
LISTS_DIR = RULES_DIR / "lists"
CITIES_DIR = RULES_DIR / "cities"
NATIONAL_CSV = CITIES_DIR / "national.csv"

RESIDENTS_PER_DONG = 15_000  # a synthetic 행정동 per this many residents (real mean: ~14,700)
MIN_DONGS, MAX_DONGS = 3, 40
NATIONAL_COLUMNS = (
    "admin_code",
    "name_ko",
    "name_en",
    "kind",
    "approx_population",
    "sido_code",
    "sido_ko",
    "sigungu_code",
    "sigungu_ko",
    "synthetic",
)


def load_sido() -> pl.DataFrame:
    """Return the 17 시도 in force: sido_code, name_ko, name_en, capital_region (수도권).

    `rules/lists/sido.csv` also keeps the codes replaced in 2023-2024 (강원 42, 전북 45) so old
    extracts validate; a row whose note says ``replaced by`` is left out here.
    """
    frame = pl.read_csv(LISTS_DIR / "sido.csv", infer_schema=False)
    return frame.filter(~pl.col("note").fill_null("").str.starts_with("replaced by")).select(
        sido_code="code",
        name_ko="name_ko",
        name_en="name_en",
        capital_region=pl.col("capital_region") == "yes",
    )


def load_sigungu() -> pl.DataFrame:
    """Return the 시군구: sigungu_code, sido_code, name_ko, kind, approx_population."""
    frame = pl.read_csv(LISTS_DIR / "sigungu.csv", infer_schema=False).with_columns(
        pl.col("approx_population").cast(pl.Int64)
    )
    return frame.rename({"code": "sigungu_code"})


def _dong_counts(population: pl.Expr) -> pl.Expr:
    return (population / RESIDENTS_PER_DONG).round().cast(pl.Int64).clip(MIN_DONGS, MAX_DONGS)


def synthetic_dongs(sigungu: pl.DataFrame) -> pl.DataFrame:
    """Synthesise 행정동 codes for each 시군구: a 군 gets one 읍 and 면s, a 시 or 구 gets 동s.

    Codes follow the real layout ``SSGGG`` + 3 digits + ``00`` (읍 250, 면 310, 320, ...,
    동 510, 520, ...); names say ``합성`` (synthetic) so they are never mistaken for real ones.
    Each 시군구's weight is split evenly over its 행정동s.
    """
    expanded = (
        sigungu.with_columns(n=_dong_counts(pl.col("approx_population")))
        .with_columns(i=pl.int_ranges(1, pl.col("n") + 1))
        .explode("i")
    )
    gun = pl.col("kind") == "gun"
    myeon_no = pl.col("i") - 1
    unit = (
        pl.when(gun & (pl.col("i") == 1))
        .then(pl.lit("eup"))
        .when(gun)
        .then(pl.lit("myeon"))
        .otherwise(pl.lit("dong"))
    )
    suffix = (
        pl.when(unit == "eup")
        .then(pl.lit(250))
        .when(unit == "myeon")
        .then(300 + 10 * myeon_no)
        .otherwise(500 + 10 * pl.col("i"))
    )
    name_ko = (
        pl.when(unit == "eup")
        .then(pl.lit("합성읍"))
        .when(unit == "myeon")
        .then(pl.format("합성{}면", myeon_no))
        .otherwise(pl.format("합성{}동", pl.col("i")))
    )
    name_en = (
        pl.when(unit == "eup")
        .then(pl.lit("Synthetic eup"))
        .when(unit == "myeon")
        .then(pl.format("Synthetic myeon {}", myeon_no))
        .otherwise(pl.format("Synthetic dong {}", pl.col("i")))
    )
    share = pl.col("approx_population") // pl.col("n")
    return expanded.select(
        admin_code=pl.concat_str(pl.col("sigungu_code"), suffix.cast(pl.String), pl.lit("00")),
        name_ko=name_ko,
        name_en=name_en,
        kind=unit,
        approx_population=share,
        sigungu_code=pl.col("sigungu_code"),
        sigungu_ko=pl.col("name_ko"),
        synthetic=pl.lit(True),
    )


def build_national() -> pl.DataFrame:
    """Build the national 행정동 list: Paju's real codes for 41480, synthetic ones elsewhere."""
    sido = load_sido().select("sido_code", sido_ko="name_ko")
    sigungu = load_sigungu()
    paju_code = "41480"
    paju = pl.read_csv(CITIES_DIR / "paju.csv", schema_overrides={"admin_code": pl.String})
    paju_name = sigungu.filter(pl.col("sigungu_code") == paju_code)["name_ko"].item()
    real = paju.select(
        "admin_code",
        "name_ko",
        "name_en",
        "kind",
        pl.col("approx_population").cast(pl.Int64),
        sigungu_code=pl.lit(paju_code),
        sigungu_ko=pl.lit(paju_name),
        synthetic=pl.lit(False),
    )
    made = synthetic_dongs(sigungu.filter(pl.col("sigungu_code") != paju_code))
    return (
        pl.concat([real, made])
        .with_columns(sido_code=pl.col("admin_code").str.slice(0, 2))
        .join(sido, on="sido_code", how="left", validate="m:1")
        .select(NATIONAL_COLUMNS)
        .sort("admin_code")
    )


def national_admin_codes() -> frozenset[str]:
    """Return every 행정동 code of ``rules/cities/national.csv``: a national program's list."""
    frame = pl.read_csv(NATIONAL_CSV, schema_overrides={"admin_code": pl.String})
    return frozenset(frame["admin_code"].to_list())


def main() -> None:
    """Write rules/cities/national.csv (or check it: ``--check`` exits 1 when it is stale)."""
    built = build_national()
    if "--check" in sys.argv[1:]:
        current = pl.read_csv(NATIONAL_CSV, infer_schema=False)
        fresh = pl.read_csv(built.write_csv().encode(), infer_schema=False)
        sys.exit(0 if current.equals(fresh) else 1)
    built.write_csv(NATIONAL_CSV)
    print(f"{built.height} administrative codes in {NATIONAL_CSV}")


if __name__ == "__main__":
    main()
