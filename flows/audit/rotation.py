"""Key rotations as ledger events: the personal-data key and the signing key (decision note 0014).

A rotation is a run record of its own (`trigger` = `key_rotation`) in the program's chain,
signed like every run, that pays nobody and decides nothing:

- **Personal-data key** (`JIWON_PII_KEY_PREVIOUS` → `JIWON_PII_KEY`): the rotation run computes
  the person key of every RRN in the extracts it is given under both keys, keeps the pairs whose
  old key the trail knows, and writes them as its one output, `audit/rotations/program=P/
  run_id=R.parquet` (`old_person_key`, `new_person_key`: nothing else). From then on the ledger
  reads every earlier run's person keys through the map, so a person paid before the rotation is
  still paid after it; only the new key is accepted; `audit explain` follows a person across it.
  It refuses (nothing rotated) when a person the ledger has paid is not in the extracts, since
  they would look unpaid under the new key.
- **Signing key** (`JIWON_SIGNING_KEY_PREVIOUS` → `JIWON_SIGNING_KEY`): the rotation record names
  both public keys, is signed by the new key and cosigned (`cosignature`) by the retiring one, so
  trust in either key carries over to the other; records after it must be signed by the new key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flows.audit import signing
from flows.decide.rules import keyed
from flows.i18n import _

ROTATION = "key_rotation"  # the trigger of a rotation's run record
PII = "pii_key"
SIGNING = "signing_key"
MAP_COLUMNS = ("old_person_key", "new_person_key")


@dataclass(frozen=True)
class Rotation:
    """A committed rotation: where it sits in the chain and what it changed."""

    run_id: str
    seq: int  # its place among the program's run records, oldest first (0-based)
    kind: str  # PII or SIGNING
    detail: dict[str, Any]  # the `rotation` object of its parameters
    file: str | None = None  # a personal-data rotation's map, relative to the output root


def rotation_of(parameters: str | None) -> dict[str, Any] | None:
    """Return the `rotation` object of a run record's parameters, or None for other runs."""
    try:
        body = json.loads(parameters or "{}")
    except ValueError:
        return None
    detail = body.get("rotation") if isinstance(body, dict) else None
    return detail if isinstance(detail, dict) else None


def rotations(runs: pl.DataFrame) -> list[Rotation]:
    """Return the committed rotations among a program's run records (read oldest first)."""
    if runs.height == 0:
        return []
    found = []
    for seq, row in enumerate(
        runs.select("trigger", "status", "run_id", "parameters", "outputs").iter_rows(named=True)
    ):
        if row["trigger"] != ROTATION or row["status"] != "committed":
            continue
        detail = rotation_of(row["parameters"])
        if detail is None or detail.get("kind") not in (PII, SIGNING):
            continue
        files = [
            o["file"] for o in row["outputs"] or [] if o["file"].startswith("audit/rotations/")
        ]
        found.append(Rotation(row["run_id"], seq, detail["kind"], detail, next(iter(files), None)))
    return found


def key_pairs(rrns: pl.LazyFrame, old: str, new: str) -> pl.LazyFrame:
    """Return each distinct well-formed RRN's person key under the old and the new key."""
    return (
        rrns.select("rrn")
        .filter(pl.col("rrn").str.contains(r"^\d{13}$"))
        .unique()
        .select(old_person_key=keyed("rrn", old), new_person_key=keyed("rrn", new))
    )


def known_persons(decided: pl.LazyFrame | None) -> pl.DataFrame:
    """Return each person key of the trail's decision records (as the current key gives it),
    whether a registry row of theirs was PAID, and a masked identity for messages."""
    if decided is None:
        return pl.DataFrame(
            schema={
                "person_key": pl.String,
                "paid": pl.Boolean,
                "rrn_masked": pl.String,
                "name_masked": pl.String,
            }
        )
    return (
        decided.filter(pl.col("person_key").is_not_null())
        .group_by("person_key")
        .agg(
            paid=((pl.col("outcome") == "PAID") & (pl.col("source_kind") == "registry")).any(),
            rrn_masked=pl.col("rrn_masked").first(),
            name_masked=pl.col("name_masked").first(),
        )
        .collect()
    )


def map_persons(pairs: pl.LazyFrame, persons: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return the rotation's map (the pairs whose old key is a known person) and the paid
    persons it leaves out (a rotation with any is refused)."""
    mapping = (
        pairs.unique()
        .join(persons.lazy(), left_on="old_person_key", right_on="person_key", how="semi")
        .sort("old_person_key")
        .select(MAP_COLUMNS)
        .collect()
    )
    missing = persons.filter("paid").join(
        mapping, left_on="person_key", right_on="old_person_key", how="anti"
    )
    return mapping, missing


def translate(
    frame: pl.LazyFrame, order: pl.DataFrame, maps: list[tuple[int, pl.LazyFrame]]
) -> pl.LazyFrame:
    """Return `frame` (with `run_id`, `person_key`) with every key as the newest key gives it.

    `order` maps run_id to its place in the chain (`_seq`); `maps` are the personal-data
    rotations (their place, their map) oldest first. A row of a run before a rotation has its key
    replaced by the rotation's new key; a key the map does not hold stays as it was (nobody the
    ledger paid: the rotation refused to leave one out).
    """
    if not maps:
        return frame
    columns = frame.collect_schema().names()
    keyed_rows = frame.join(order.lazy(), on="run_id", how="left", maintain_order="left")
    for seq, mapping in maps:
        keyed_rows = (
            keyed_rows.join(
                mapping,
                left_on="person_key",
                right_on="old_person_key",
                how="left",
                maintain_order="left",
            )
            .with_columns(
                person_key=pl.when(pl.col("_seq") < seq)
                .then(pl.coalesce("new_person_key", "person_key"))
                .otherwise(pl.col("person_key"))
            )
            .drop("new_person_key")
        )
    return keyed_rows.select(columns)


def aliases(keys: set[str], maps: list[pl.DataFrame]) -> set[str]:
    """Return `keys` with every key a rotation linked to one of them, in either direction."""
    found = set(keys)
    for _round in range(len(maps) + 1):
        before = len(found)
        for mapping in maps:
            linked = mapping.filter(
                pl.col("old_person_key").is_in(list(found))
                | pl.col("new_person_key").is_in(list(found))
            )
            found |= set(linked["old_person_key"]) | set(linked["new_person_key"])
        if len(found) == before:
            break
    return found


@dataclass(frozen=True)
class SigningEra:
    """The records a signing key signed: from `first` (index) up to the next rotation."""

    first: int
    key: Ed25519PublicKey | None  # None: no rotation names it (the trusted keys decide)


def signing_eras(runs: pl.DataFrame) -> tuple[list[SigningEra], list[tuple[int, str]]]:
    """Return the chain's signing eras and the problems of its signing-key rotations.

    A rotation names the previous and the new public key; it must name as previous the key of
    the era before it (so the keys form one line), be signed by the new key and cosigned by the
    previous one.
    """
    from flows.audit.records import record_from_row

    eras = [SigningEra(0, None)]
    problems: list[tuple[int, str]] = []
    for rotation in [r for r in rotations(runs) if r.kind == SIGNING]:
        try:
            previous = signing.public_key(str(rotation.detail["previous_public_key"]).encode())
            new = signing.public_key(str(rotation.detail["new_public_key"]).encode())
        except (KeyError, signing.SigningKeyError):
            problems.append((rotation.seq, _("names public keys that cannot be read")))
            continue
        before = eras[-1].key
        if before is not None and signing.key_id(before) != signing.key_id(previous):
            problems.append(
                (
                    rotation.seq,
                    _("rotates from a key that is not the one signing the runs before it"),
                )
            )
        if before is None:
            eras[-1] = SigningEra(eras[-1].first, previous)
        record = record_from_row(runs.row(rotation.seq, named=True))
        if not record.signed_by(new):
            problems.append((rotation.seq, _("is not signed by the new key it names")))
        elif not signing.signed_by(previous, record.canonical(), record.cosignature):
            problems.append(
                (rotation.seq, _("is not cosigned by the retiring key it names (forged rotation)"))
            )
        eras.append(SigningEra(rotation.seq, new))
    return eras, problems


def era_key(eras: list[SigningEra], index: int) -> Ed25519PublicKey | None:
    """Return the key that must sign record `index` (None: any trusted key, no rotation yet)."""
    key = None
    for era in eras:
        if era.first <= index:
            key = era.key
    return key


def trusted_era(eras: list[SigningEra], trusted: list[Ed25519PublicKey]) -> bool:
    """Return whether a trusted key signed some era (rotations then vouch for the others)."""
    ids = {signing.key_id(k) for k in trusted}
    return any(e.key is not None and signing.key_id(e.key) in ids for e in eras)


def signature_problems(
    runs: pl.DataFrame,
    trusted: list[Ed25519PublicKey],
    chain: tuple[list[SigningEra], list[tuple[int, str]]] | None = None,
) -> dict[int, str]:
    """Return, per record index, why its signature is not acceptable (none: all hold).

    Without a signing-key rotation every record must be signed by a trusted key. With one, each
    record must be signed by the key of its era, and one era's key must be trusted. `chain`:
    `signing_eras(runs)`, when the caller has it already.
    """
    from flows.audit.records import record_from_row

    eras, problems = chain or signing_eras(runs)
    found = {seq: f"is a signing-key rotation that {why}" for seq, why in problems}
    rotated = len(eras) > 1
    if rotated and not trusted_era(eras, trusted):
        ids = ", ".join(f"{signing.key_id(e.key)[:12]}…" for e in eras if e.key is not None)
        found.setdefault(
            0, f"is in a chain signed by keys (ids {ids}) none of which is a trusted key"
        )
    for index in range(runs.height):
        if index in found:
            continue
        record = record_from_row(runs.row(index, named=True))
        key = era_key(eras, index) if rotated else None
        why = record.signature_problem([key] if key is not None else trusted)
        if why is not None:
            found[index] = why
    return found
