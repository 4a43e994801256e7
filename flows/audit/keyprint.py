"""The key's fingerprint: proof that every run of a program used the same `JIWON_PII_KEY`.

Person keys and payment ids are HMACs with the deployment key, so a run with another key sees
nobody as paid and pays everyone again. Every run record carries `key_fingerprint`, a salted
scrypt of the key: it never holds the key, cannot be turned back into it, and testing one guess
against it costs a deliberately slow, memory-hard scrypt (about 0.1 s and 32 MiB here), so it is
no cheaper an oracle than the person keys already are. The parameters are written into the
fingerprint itself (`scrypt$n=32768,r=8,p=1$<salt>$<hash>`), so they can be raised later
without breaking older records.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import polars as pl

from flows.errors import RunHalted
from flows.i18n import _

N, R, P = 2**15, 8, 1
SCHEME = "scrypt"


def fingerprint(key: str, salt: bytes | None = None, n: int = N, r: int = R, p: int = P) -> str:
    """Return the key's salted scrypt fingerprint (a fresh random salt when none is given)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(key.encode(), salt=salt, n=n, r=r, p=p, maxmem=2**27, dklen=32)
    return f"{SCHEME}$n={n},r={r},p={p}${salt.hex()}${digest.hex()}"


def _parse(print_: str) -> tuple[bytes, int, int, int]:
    scheme, params, salt, _digest = print_.split("$")
    if scheme != SCHEME:
        raise ValueError(_("unknown key fingerprint scheme {scheme!r}").format(scheme=scheme))
    values = dict(item.split("=") for item in params.split(","))
    return bytes.fromhex(salt), int(values["n"]), int(values["r"]), int(values["p"])


def matches(key: str, print_: str) -> bool:
    """Return whether `key` is the key `print_` was made from."""
    salt, n, r, p = _parse(print_)
    return hmac.compare_digest(fingerprint(key, salt, n, r, p), print_)


def program_fingerprints(runs: pl.DataFrame) -> list[tuple[str, str]]:
    """Return (fingerprint, first run_id) of the key of every committed run, oldest first.

    Only runs since the program's last personal-data key rotation count: its key is the
    program's key from then on, and the keys before it are refused (decision note 0014).
    """
    from flows.audit.rotation import PII, rotations

    if runs.height == 0 or "key_fingerprint" not in runs.columns:
        return []
    rotated = [r.seq for r in rotations(runs) if r.kind == PII]
    if rotated:
        runs = runs.slice(rotated[-1])
    committed = runs.filter(
        pl.col("status") == "committed",
        ~pl.col("dry_run"),
        pl.col("key_fingerprint").is_not_null(),
    )
    first = committed.group_by("key_fingerprint", maintain_order=True).agg(pl.col("run_id").first())
    return [(str(f), str(r)) for f, r in first.iter_rows()]


def fingerprint_like(key: str, known: list[tuple[str, str]]) -> str:
    """Return this key's fingerprint with the program's salt and parameters (fresh if none)."""
    if not known:
        return fingerprint(key)
    salt, n, r, p = _parse(known[0][0])
    return fingerprint(key, salt, n, r, p)


def check_key(key: str, ours: str, known: list[tuple[str, str]], program: str) -> None:
    """Halt unless `key` (fingerprinted as `ours`) is the key of every committed run.

    The program's key is the one its committed runs used: a run with any other key would pay
    everyone again, so it stops before reading any input.
    """
    for print_, run_id in known:
        same_salt = _parse(print_) == _parse(ours)
        if not (print_ == ours if same_salt else matches(key, print_)):
            raise RunHalted(
                _(
                    "run halted: JIWON_PII_KEY is set to a different key than the "
                    "one program {program} was paid with (its key fingerprint "
                    "differs from committed run {run_id}): with another key every "
                    "resident would look unpaid and be paid again; nothing was paid. "
                    "Set the deployment's key from your secret store and run again "
                    "(to change the key on purpose, rotate it: docs/operators.md)."
                ).format(program=program, run_id=run_id)
            )
