"""Opening store.db: connection settings and schema migrations."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from .errors import ReadOnlyStoreError, SchemaError
from .schema import MIGRATIONS, SCHEMA_VERSION

DEFAULT_BUSY_TIMEOUT_MS = 15_000


def utc_now() -> str:
    """Timestamps are ISO 8601 UTC with microseconds, so they sort as text."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _connect_readonly(db_path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """mode=ro; when the folder cannot hold WAL's -shm file (a store the user may not write,
    closed cleanly), immutable=1: SQLite then reads the file as it is, without locks."""
    uri = f"file:{quote(str(db_path.resolve()))}?mode=ro"
    last: Exception | None = None
    for suffix in ("", "&immutable=1"):
        try:
            conn = sqlite3.connect(uri + suffix, uri=True, isolation_level=None, check_same_thread=False,
                                   timeout=busy_timeout_ms / 1000)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as e:
            last = e
    raise SchemaError(f"{db_path}: expected a SQLite database we can read, got {last}")


def connect(db_path: Path, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
            durable: bool = True, readonly: bool = False) -> sqlite3.Connection:
    """Open store.db in WAL mode with durable commits.

    isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves (see
    Store.transaction); IMMEDIATE takes the write lock up front, so a writer
    waits on busy_timeout instead of failing with SQLITE_BUSY when it upgrades.
    durable=True (default): synchronous=FULL fsyncs the WAL at every commit, so
    a label is on disk when add_label returns even if the machine loses power.
    A commit then costs one fsync; bulk writes
    are batched into one transaction so only interactive writes pay it.
    durable=False: synchronous=NORMAL, no fsync per commit. A committed write
    still survives the process being killed (it is in the OS page cache, and
    WAL recovery replays it), but not a power loss or kernel crash; the
    database stays consistent either way. Meant for bulk jobs that can rerun.
    readonly=True: SQLite's mode=ro (see _connect_readonly); nothing is written.
    """
    try:
        if readonly:
            conn = _connect_readonly(db_path, busy_timeout_ms)
        else:
            conn = sqlite3.connect(
                str(db_path), isolation_level=None, check_same_thread=False,
                timeout=busy_timeout_ms / 1000,
            )
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode" if readonly else "PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: ranked pages touch a few index pages, builds many
    except sqlite3.DatabaseError as e:
        if "readonly" in str(e):
            raise ReadOnlyStoreError(f"store is read-only: {db_path} (permission denied)") from e
        raise SchemaError(f"{db_path}: expected a SQLite database, got an unreadable or damaged file ({e}); "
                          f"`python -m store check --store DIR` says what is wrong") from e
    if str(mode).lower() != "wal" and not readonly:
        conn.close()
        raise SchemaError(f"{db_path}: expected journal_mode wal, got {mode}")
    return conn


def split_sql(script: str) -> list[str]:
    """Split a script into statements (trigger bodies hold ';' so use SQLite's own test).

    We cannot use executescript: it COMMITs any open transaction first.
    """
    statements, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        raise SchemaError(f"expected complete SQL statements, got a trailing fragment: {buf.strip()[:80]!r}")
    return statements


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_readable(conn: sqlite3.Connection, db_path: Path) -> int:
    """For a read-only open: the schema must be this code's, since nothing can migrate it."""
    version = schema_version(conn)
    if version != SCHEMA_VERSION:
        newer = version > SCHEMA_VERSION
        raise SchemaError(
            f"{db_path}: expected schema version {SCHEMA_VERSION} to read it, got {version}; "
            + ("upgrade Verbatim to open this store" if newer else
               "open it once with write access (any write command) to upgrade it"))
    return version


def migrate(conn: sqlite3.Connection, db_path: Path) -> int:
    """Bring the database to SCHEMA_VERSION; each migration is its own transaction."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{db_path}: expected schema version <= {SCHEMA_VERSION} (what this code knows), "
            f"got {version}; upgrade Verbatim to open this store"
        )
    while version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have migrated while we waited for the lock
            version = schema_version(conn)
            if version >= SCHEMA_VERSION:
                conn.execute("COMMIT")
                break
            if version == 0:
                foreign = [r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
                if foreign:
                    raise SchemaError(
                        f"{db_path}: expected an empty database or a Verbatim store, "
                        f"got a database with tables {sorted(foreign)} and no schema version")
            for statement in split_sql(MIGRATIONS[version]):
                conn.execute(statement)
            version += 1
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version
