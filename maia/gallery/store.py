"""The gallery: saved pieces and the listening room's votes, in SQLite beside their files.

    gallery = Gallery.open(limits)                      # MAIA_DATA_DIR; migrates and sweeps at start
    uid = gallery.save("Nocturne", token, {"midi": path, "wav": path2}, composer="chopin", model="piano",
                       key="C minor", seconds=31.0, notes=212, settings={...}, seed=3, link="composer=chopin&...",
                       prompt="example:lacrimosa.mid", variant="piano · top-k 5 · T 1")
    page, total = gallery.list(sort="newest", composer="chopin")
    a, b = gallery.next_pair(token); gallery.vote(a.uid, b.uid, "a", token)

The database is ``gallery.sqlite3`` in WAL mode (readers never wait for the writer); every change is one
``BEGIN IMMEDIATE`` transaction on a connection of its own, so threads and processes can share a gallery.
Browsers are known by a random token the page keeps in the browser (maia/gallery/page.py); only its
sha256 is stored. Pieces and files are named by ids and hashes checked against patterns: no argument of
a request can name a path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import sqlite3
import time
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from maia.errors import GalleryError, InputError
from maia.gallery import schema
from maia.gallery.blobs import EXTENSIONS, Blobs

DB_NAME = "gallery.sqlite3"
SHELF_OWNER = "maia"  # owner of maia's works: no browser token hashes to it, so no browser can delete them
UID = re.compile(r"[0-9a-f]{16}")
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
SORTS = ("newest", "rated")
CHOICES = ("a", "b", "same")


@dataclass(frozen=True)
class Quotas:
    """What one browser may do, and how big a piece may be: limited like uploads."""

    max_title: int = 120  # characters
    max_file_bytes: int = 64 * 1024 * 1024  # per file: a WAV of 4,096 tokens (~3 min stereo) is ~30 MB
    max_pieces_per_owner: int = 200
    saves_per_minute: int = 10  # per browser
    votes_per_minute: int = 30  # per browser
    page_size: int = 24


@dataclass
class Piece:
    """One saved piece, as the page and the CLI see it."""

    uid: str
    title: str
    composer: str
    model: str
    key: str
    seconds: float
    notes: int
    settings: dict
    seed: int | None
    link: str
    shelf: bool
    hidden: bool
    created: float
    prompt: str
    variant: str
    owner: str  # sha256 of the owner's token, or SHELF_OWNER
    files: dict[str, Path] = field(default_factory=dict)  # kind -> stored file
    score: float | None = None  # in a list sorted by rating: (wins + ties/2 + 1) / (votes + 2)

    def owned_by(self, token: str | None) -> bool:
        return token is not None and TOKEN.fullmatch(token) is not None and _digest(token) == self.owner


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def owner_digest(token: str) -> str:
    """The stored form of a browser's token; InputError for one the page could not have made."""
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        raise InputError("this browser has no gallery token; reload the page")
    return _digest(token)


def clean_title(title: str, limit: int) -> str:
    """The title as typed, less control characters and surrounding blanks; InputError when empty or too long.
    HTML stays as typed: the page shows titles as text."""
    title = "".join(" " if c in "\t\r\n" else c for c in str(title or "") if unicodedata.category(c) != "Cc" or c in "\t\r\n")
    title = title.strip()
    if not title:
        raise InputError("give the piece a title")
    if len(title) > limit:
        raise InputError(f"the title is {len(title)} characters; at most {limit}")
    return title


def check_uid(uid: str) -> str:
    if not isinstance(uid, str) or not UID.fullmatch(uid):
        raise InputError("no such piece")
    return uid


class Gallery:
    """A gallery folder: ``gallery.sqlite3`` and ``files/``. Opening it migrates and sweeps orphans."""

    def __init__(self, folder: str | Path, quotas: Quotas | None = None):
        self.folder = Path(folder)
        self.quotas = quotas or Quotas()
        self.db = self.folder / DB_NAME
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.blobs = Blobs(self.folder / "files")
        except OSError as e:
            raise GalleryError(f"{self.folder}: cannot use this folder for the gallery ({e.strerror or e})") from None
        with self._errors():
            conn = self._connect()
            try:
                if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                    raise GalleryError(f"{self.db}: cannot switch the gallery database to WAL mode")
                schema.migrate(conn, name=str(self.db))  # GalleryError's one line for a newer database
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a corrupt header fails here
            finally:
                conn.close()
        self.sweep()

    @classmethod
    def open(cls, limits, quotas: Quotas | None = None) -> Gallery:
        """The gallery in ``limits.data_path()`` (MAIA_DATA_DIR)."""
        return cls(limits.data_path(), quotas)

    # ---- connections --------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are the explicit BEGIN IMMEDIATE of _write. The timeout is how long
        # a writer waits for another's transaction (each lasts milliseconds).
        conn = sqlite3.connect(self.db, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at each checkpoint, never corrupt
        return conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as e:
            what = "corrupt or not a gallery database" if "not a database" in str(e) or "malformed" in str(e) else str(e)
            raise GalleryError(f"{self.db}: {what}; move it away (or set MAIA_DATA_DIR) to start a new gallery") from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._errors():
            conn = self._connect()
            try:
                conn.execute("BEGIN")  # one snapshot for all the reads of this block
                yield conn
                conn.execute("COMMIT")
            finally:
                conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One writer transaction: all of the block's changes, or none of them."""
        with self._errors():
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                conn.close()

    # ---- pieces -------------------------------------------------------------------------------------
    def save(self, title: str, token: str | None, files: Mapping[str, str | Path | bytes], *, composer: str,
             model: str, key: str = "", seconds: float = 0.0, notes: int = 0, settings: dict | None = None,
             seed: int | None = None, link: str = "", prompt: str = "", variant: str = "", shelf: bool = False,
             uid: str | None = None, created: float | None = None) -> str:
        """Saves a piece and its files (kind -> path or bytes; kinds: midi, wav, musicxml, roll; a MIDI is
        needed) and returns its uid. ``token`` is the saving browser's (None for maia's works, with
        ``shelf``). InputError for a title, file or quota the page should refuse."""
        q = self.quotas
        title = clean_title(title, q.max_title)
        owner = SHELF_OWNER if shelf and token is None else owner_digest(token)
        if "midi" not in files:
            raise InputError("there is no MIDI to save yet: compose a piece first")
        data = {}
        for kind, f in files.items():
            if kind not in EXTENSIONS:
                raise InputError(f"not a kind of file the gallery keeps: {kind!r}")
            if f is None:
                continue
            if not isinstance(f, bytes):
                f = Path(f)
                if f.stat().st_size > q.max_file_bytes:
                    raise InputError(f"{f.name} is over the gallery's limit of {q.max_file_bytes // 2**20} MiB")
                f = f.read_bytes()
            if len(f) > q.max_file_bytes:
                raise InputError(f"the {kind} file is over the gallery's limit of {q.max_file_bytes // 2**20} MiB")
            data[kind] = f
        uid = check_uid(uid) if uid is not None else secrets.token_hex(8)
        text = json.dumps(settings or {}, sort_keys=True)
        if len(text) > 4096 or len(link) > 4096 or len(prompt) > 256 or len(variant) > 256:
            raise InputError("the piece's settings are too long to keep")
        now = time.time() if created is None else created
        with self.blobs.saving():  # from the first file to the commit: the sweep waits for us
            stored = {kind: (self.blobs.put(b, kind), len(b)) for kind, b in data.items()}
            with self._write() as conn:
                if owner != SHELF_OWNER:
                    n, recent = conn.execute("SELECT count(*), sum(created > ?) FROM pieces WHERE owner = ?",
                                             (now - 60, owner)).fetchone()
                    if n >= q.max_pieces_per_owner:
                        raise InputError(f"this browser has saved {n} pieces, the most it may keep; delete some first")
                    if (recent or 0) >= q.saves_per_minute:
                        raise InputError("too many saves from this browser; wait a minute")
                cur = conn.execute(
                    "INSERT INTO pieces (uid, title, composer, model, key, seconds, notes, settings, seed, link, "
                    "owner, shelf, created, prompt, variant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (uid, title, str(composer), str(model), str(key), float(seconds), int(notes), text, seed, link,
                     owner, int(shelf), now, prompt, variant))
                conn.executemany("INSERT INTO files (piece, kind, hash, size) VALUES (?, ?, ?, ?)",
                                 [(cur.lastrowid, k, h, n) for k, (h, n) in stored.items()])
        return uid

    def _pieces(self, conn, where: str = "1", args: tuple = (), order: str = "p.created DESC, p.id DESC",
                limit: int = -1, offset: int = 0, score: bool = False) -> list[Piece]:
        select = "SELECT p.*"
        joins = ""
        if score:
            # wins count 1, ties 1/2, from both sides of each vote; a Laplace prior keeps 1 win of 1 below 5 of 6
            select += ", (coalesce(sum(r.w), 0) + 1.0) / (count(r.w) + 2.0) AS score"
            joins = (" LEFT JOIN (SELECT a AS uid, CASE choice WHEN 'a' THEN 1.0 WHEN 'same' THEN 0.5 ELSE 0.0 END AS w"
                     " FROM votes UNION ALL SELECT b, CASE choice WHEN 'b' THEN 1.0 WHEN 'same' THEN 0.5 ELSE 0.0 END"
                     " FROM votes) r ON r.uid = p.uid")
        rows = conn.execute(f"{select} FROM pieces p{joins} WHERE {where} GROUP BY p.id ORDER BY {order} "
                            "LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        pieces = {r["id"]: self._piece(r) for r in rows}
        if pieces:
            marks = ",".join("?" * len(pieces))
            for f in conn.execute(f"SELECT piece, kind, hash FROM files WHERE piece IN ({marks})", tuple(pieces)):
                pieces[f["piece"]].files[f["kind"]] = self.blobs.path(f["hash"], f["kind"])
        return list(pieces.values())

    @staticmethod
    def _piece(r: sqlite3.Row) -> Piece:
        return Piece(uid=r["uid"], title=r["title"], composer=r["composer"], model=r["model"], key=r["key"],
                     seconds=r["seconds"], notes=r["notes"], settings=json.loads(r["settings"]), seed=r["seed"],
                     link=r["link"], shelf=bool(r["shelf"]), hidden=bool(r["hidden"]), created=r["created"],
                     prompt=r["prompt"], variant=r["variant"], owner=r["owner"],
                     score=r["score"] if "score" in r.keys() else None)  # noqa: SIM118 (`in` on a Row looks at its values)

    def get(self, uid: str, include_hidden: bool = False) -> Piece | None:
        """The piece of this uid (None if there is none, or it is hidden)."""
        if not isinstance(uid, str) or not UID.fullmatch(uid):
            return None
        with self._read() as conn:
            found = self._pieces(conn, "p.uid = ?" + ("" if include_hidden else " AND p.hidden = 0"), (uid,))
        return found[0] if found else None

    def list(self, sort: str = "newest", composer: str | None = None, model: str | None = None,
             key: str | None = None, page: int = 0, shelf: bool | None = None,
             include_hidden: bool = False) -> tuple[list[Piece], int]:
        """A page of pieces (``quotas.page_size``, page 0 first), newest first or best rated, and how many
        match in all."""
        if sort not in SORTS:
            raise InputError(f"sort must be one of {', '.join(SORTS)}")
        where, args = ["1"], []
        for column, value in (("composer", composer), ("model", model), ("key", key)):
            if value:
                where.append(f"p.{column} = ?")
                args.append(str(value))
        if shelf is not None:
            where.append("p.shelf = ?")
            args.append(int(shelf))
        if not include_hidden:
            where.append("p.hidden = 0")
        size = self.quotas.page_size
        order = "score DESC, p.created DESC, p.id DESC" if sort == "rated" else "p.created DESC, p.id DESC"
        with self._read() as conn:
            total = conn.execute(f"SELECT count(*) FROM pieces p WHERE {' AND '.join(where)}", args).fetchone()[0]
            pieces = self._pieces(conn, " AND ".join(where), tuple(args), order, size, max(0, int(page)) * size,
                                  score=sort == "rated")
        return pieces, total

    def facets(self) -> dict[str, list[str]]:
        """The composers, models and keys of the visible pieces, for the page's filters."""
        with self._read() as conn:
            return {c: [r[0] for r in conn.execute(f"SELECT DISTINCT {c} FROM pieces WHERE hidden = 0 AND {c} <> '' "
                                                   f"ORDER BY {c}")] for c in ("composer", "model", "key")}

    def delete(self, uid: str, token: str | None) -> None:
        """Deletes a piece of this browser's; InputError for another's (or none). Its votes stay."""
        uid, owner = check_uid(uid), owner_digest(token)
        with self._write() as conn:
            row = conn.execute("SELECT id, owner FROM pieces WHERE uid = ?", (uid,)).fetchone()
            if row is None:
                raise InputError("no such piece")
            if row["owner"] != owner:
                raise InputError("only the browser that saved a piece can delete it")
            names = {self.blobs.name(f["hash"], f["kind"])
                     for f in conn.execute("SELECT hash, kind FROM files WHERE piece = ?", (row["id"],))}
            conn.execute("DELETE FROM pieces WHERE id = ?", (row["id"],))  # its files' rows go with it (cascade)
        self._collect(names)

    def hide(self, uid: str, hidden: bool = True) -> None:
        """The operator hides (or shows again) any piece; InputError when there is none."""
        uid = check_uid(uid)
        with self._write() as conn:
            if conn.execute("UPDATE pieces SET hidden = ? WHERE uid = ?", (int(hidden), uid)).rowcount == 0:
                raise InputError(f"no piece {uid}")

    # ---- files --------------------------------------------------------------------------------------
    def _referenced(self, conn) -> set[str]:
        return {self.blobs.name(r[0], r[1]) for r in conn.execute("SELECT DISTINCT hash, kind FROM files")}

    def _collect(self, names: set[str]) -> None:
        """Removes the files of a deleted piece that nothing else refers to, unless a save is in flight (the
        next start's sweep takes them then)."""
        with self.blobs.sweeping(wait=False) as got:
            if got:
                with self._read() as conn:
                    referenced = self._referenced(conn)
                self.blobs.remove_unreferenced(referenced, among=names)

    def sweep(self) -> int:
        """Removes the files no piece refers to (left by a crash mid-save) and unfinished temp files; waits for
        saves in flight. Returns the count removed."""
        with self.blobs.sweeping():
            with self._read() as conn:
                referenced = self._referenced(conn)
            return self.blobs.remove_unreferenced(referenced)

    # ---- the listening room -------------------------------------------------------------------------
    def next_pair(self, token: str, tries: int = 20) -> tuple[Piece, Piece] | None:
        """Two visible pieces with audio that continue the same prompt by different variants, which this
        browser has not voted on, at random (None when there are none left). The page shuffles A and B."""
        voter = owner_digest(token)
        playable = "p.hidden = 0 AND p.prompt <> '' AND EXISTS (SELECT 1 FROM files f WHERE f.piece = p.id AND f.kind = 'wav')"
        with self._read() as conn:
            for first in conn.execute(f"SELECT p.uid, p.prompt, p.variant FROM pieces p WHERE {playable} "
                                      "ORDER BY random() LIMIT ?", (tries,)).fetchall():
                other = conn.execute(
                    f"SELECT p.uid FROM pieces p WHERE {playable} AND p.prompt = ? AND p.variant <> ? AND NOT EXISTS "
                    "(SELECT 1 FROM votes v WHERE v.voter = ? AND v.a = min(p.uid, ?) AND v.b = max(p.uid, ?)) "
                    "ORDER BY random() LIMIT 1", (first["prompt"], first["variant"], voter, first["uid"], first["uid"])
                ).fetchone()
                if other is not None:
                    a = self._pieces(conn, "p.uid = ?", (first["uid"],))[0]
                    b = self._pieces(conn, "p.uid = ?", (other["uid"],))[0]
                    return a, b
        return None

    def vote(self, a: str, b: str, choice: str, token: str, now: float | None = None) -> None:
        """Records that this browser found piece ``a`` better ("a"), ``b`` better ("b") or neither ("same").
        InputError when they are not a pair, when this browser voted on them already, or votes too fast."""
        a, b, voter = check_uid(a), check_uid(b), owner_digest(token)
        if choice not in CHOICES:
            raise InputError(f"a vote is one of {', '.join(CHOICES)}")
        if a == b:
            raise InputError("a piece cannot be compared with itself")
        if a > b:  # stored in uid order
            a, b, choice = b, a, {"a": "b", "b": "a", "same": "same"}[choice]
        now = time.time() if now is None else now
        with self._write() as conn:
            rows = {r["uid"]: r for r in conn.execute("SELECT uid, prompt, variant FROM pieces WHERE uid IN (?, ?) "
                                                      "AND hidden = 0", (a, b))}
            if len(rows) < 2:
                raise InputError("no such pair of pieces")
            if rows[a]["prompt"] != rows[b]["prompt"] or not rows[a]["prompt"] or rows[a]["variant"] == rows[b]["variant"]:
                raise InputError("these two pieces are not a pair of the listening room")
            recent = conn.execute("SELECT count(*) FROM votes WHERE voter = ? AND created > ?",
                                  (voter, now - 60)).fetchone()[0]
            if recent >= self.quotas.votes_per_minute:
                raise InputError("too many votes from this browser; wait a minute")
            try:
                conn.execute("INSERT INTO votes (a, b, a_variant, b_variant, choice, voter, created) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (a, b, rows[a]["variant"], rows[b]["variant"], choice, voter, now))
            except sqlite3.IntegrityError:
                raise InputError("this browser has voted on this pair already") from None

    def games(self) -> list[tuple[str, str, float]]:
        """Every vote as (variant A, variant B, A's score: 1 a win, 0.5 the same, 0 a loss)."""
        with self._read() as conn:
            return [(r[0], r[1], {"a": 1.0, "same": 0.5, "b": 0.0}[r[2]])
                    for r in conn.execute("SELECT a_variant, b_variant, choice FROM votes ORDER BY id")]

    def counts(self) -> dict[str, int]:
        with self._read() as conn:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("pieces", "files", "votes")}
