"""The gallery's SQLite schema, as numbered migrations applied in order at start.

The database's ``PRAGMA user_version`` is the number of migrations it has had. ``migrate`` applies the
missing ones, each in one transaction with its version bump, so a crash leaves the database at one
version or the next, never between. A database newer than this code (a later maia wrote it) is refused
with one line: the old code would not know what the new columns mean.

Never edit a shipped migration: add the next one. Version 1 is the gallery alone; version 2 added the
listening room (what a piece continues, the variant it stands for, the votes).
"""

from __future__ import annotations

import sqlite3

from maia.errors import GalleryError

MIGRATIONS: list[str] = [
    # 1: the gallery. A piece's public id is a short random hex string (never its row id, so ids cannot be
    # walked); its files are rows naming a content hash, the file itself lies in files/ beside the database.
    """
    CREATE TABLE pieces (
        id       INTEGER PRIMARY KEY,
        uid      TEXT NOT NULL UNIQUE,         -- public id, 16 hex digits
        title    TEXT NOT NULL,                -- as the user typed it: shown as text, never as HTML
        composer TEXT NOT NULL,
        model    TEXT NOT NULL,
        key      TEXT NOT NULL DEFAULT '',     -- e.g. 'D minor'
        seconds  REAL NOT NULL DEFAULT 0,
        notes    INTEGER NOT NULL DEFAULT 0,
        settings TEXT NOT NULL DEFAULT '{}',   -- JSON: tokens, top_k, temperature, steering...
        seed     INTEGER,
        link     TEXT NOT NULL DEFAULT '',     -- the permalink's query string (no host)
        owner    TEXT NOT NULL,                -- sha256 of the saving browser's token
        shelf    INTEGER NOT NULL DEFAULT 0,   -- 1: maia's works (python -m maia gallery seed)
        hidden   INTEGER NOT NULL DEFAULT 0,   -- 1: hidden by the operator
        created  REAL NOT NULL
    );
    CREATE INDEX pieces_created ON pieces(created);
    CREATE INDEX pieces_owner ON pieces(owner);
    CREATE TABLE files (
        piece INTEGER NOT NULL REFERENCES pieces(id) ON DELETE CASCADE,
        kind  TEXT NOT NULL CHECK (kind IN ('midi', 'wav', 'musicxml', 'roll')),
        hash  TEXT NOT NULL,                   -- sha256 of the content: files/<hash[:2]>/<hash>.<ext>
        size  INTEGER NOT NULL,
        PRIMARY KEY (piece, kind)
    );
    CREATE INDEX files_hash ON files(hash);
    """,
    # 2: the listening room. Two pieces that continue the same prompt by different variants (model and
    # settings) make a pair. A vote names the pieces and their variants, so it outlives a deleted piece
    # and the ratings do not change when an owner deletes one.
    """
    ALTER TABLE pieces ADD COLUMN prompt TEXT NOT NULL DEFAULT '';   -- what it continues: 'example:x.mid'...
    ALTER TABLE pieces ADD COLUMN variant TEXT NOT NULL DEFAULT '';  -- what it stands for in the ratings
    CREATE INDEX pieces_prompt ON pieces(prompt);
    CREATE TABLE votes (
        id        INTEGER PRIMARY KEY,
        a         TEXT NOT NULL,               -- piece uids, a < b
        b         TEXT NOT NULL,
        a_variant TEXT NOT NULL,
        b_variant TEXT NOT NULL,
        choice    TEXT NOT NULL CHECK (choice IN ('a', 'b', 'same')),
        voter     TEXT NOT NULL,               -- sha256 of the browser's token
        created   REAL NOT NULL,
        UNIQUE (a, b, voter),
        CHECK (a < b)
    );
    CREATE INDEX votes_voter ON votes(voter, created);
    """,
]
VERSION = len(MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    """The database's schema version (0: a new, empty database)."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, target: int = VERSION, name: str = "the gallery") -> int:
    """Brings the database up to ``target`` (default: this code's version); returns the version it had.
    GalleryError when it is newer than this code. ``conn`` must be in autocommit mode
    (``isolation_level=None``): each migration is its own ``BEGIN IMMEDIATE`` transaction."""
    have = version(conn)
    if have > VERSION:
        raise GalleryError(f"{name} has schema version {have}, newer than this maia's {VERSION}: "
                           "upgrade maia, or point MAIA_DATA_DIR elsewhere")
    for v in range(have, target):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version(conn) != v:  # another process migrated while we waited for the lock
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(MIGRATIONS[v]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {v + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return have


def _statements(script: str) -> list[str]:
    """A migration's statements, one by one (``executescript`` would commit the transaction first)."""
    out, current = [], ""
    for line in script.splitlines():
        current += line.split("--")[0] + "\n"
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    assert not current.strip(), "a migration ends without a semicolon"
    return out
