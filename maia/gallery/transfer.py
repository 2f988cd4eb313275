"""Moving a whole gallery: pieces, their files and the votes, in one zip file.

    python -m maia gallery export gallery.zip     # export(gallery, "gallery.zip")
    python -m maia gallery import gallery.zip     # import_(gallery, "gallery.zip"): merges, skips what is there

The zip holds ``gallery.json`` (format, schema version, pieces with their files' hashes, votes) and
``files/<sha256>.<ext>``. The export is read from one snapshot of the database and written to a temp name,
then renamed. An import checks every field and every file's hash before it keeps anything, stores the
files, then inserts all the rows in one transaction: a failed import changes nothing but unreferenced
files, which the next start sweeps.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

from maia.errors import InputError
from maia.gallery import schema
from maia.gallery.blobs import EXTENSIONS, HASH, Blobs
from maia.gallery.store import CHOICES, SHELF_OWNER, UID, Gallery, clean_title

FORMAT = "maia-gallery"
PIECE_FIELDS = ("uid", "title", "composer", "model", "key", "seconds", "notes", "settings", "seed", "link", "owner",
                "shelf", "hidden", "created", "prompt", "variant")
VOTE_FIELDS = ("a", "b", "a_variant", "b_variant", "choice", "voter", "created")


def document(gallery: Gallery) -> dict:
    """The gallery's rows as one JSON-able document, from one snapshot."""
    with gallery._read() as conn:
        files: dict[int, dict] = {}
        for f in conn.execute("SELECT piece, kind, hash, size FROM files ORDER BY piece, kind"):
            files.setdefault(f["piece"], {})[f["kind"]] = {"hash": f["hash"], "size": f["size"]}
        pieces = [{**{k: r[k] for k in PIECE_FIELDS}, "settings": json.loads(r["settings"]),
                   "shelf": bool(r["shelf"]), "hidden": bool(r["hidden"]), "files": files.get(r["id"], {})}
                  for r in conn.execute("SELECT * FROM pieces ORDER BY created, uid")]
        votes = [{k: r[k] for k in VOTE_FIELDS} for r in conn.execute("SELECT * FROM votes ORDER BY created, id")]
    return {"format": FORMAT, "schema": schema.VERSION, "pieces": pieces, "votes": votes}


def export(gallery: Gallery, path: str | Path) -> dict:
    """Writes the whole gallery to a zip at ``path``; returns the counts written."""
    path = Path(path)
    doc = document(gallery)
    part = path.with_name(path.name + ".part")
    written = set()
    try:
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("gallery.json", json.dumps(doc, ensure_ascii=False, indent=1))
            for p in doc["pieces"]:
                for kind, f in p["files"].items():
                    name = Blobs.name(f["hash"], kind)
                    if name not in written:
                        z.write(gallery.blobs.path(f["hash"], kind), f"files/{name}")
                        written.add(name)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return {"pieces": len(doc["pieces"]), "votes": len(doc["votes"]), "files": len(written)}


def _check(doc, gallery: Gallery) -> None:
    """InputError naming the first thing in ``doc`` that a gallery would not have written."""
    def need(ok, what):
        if not ok:
            raise InputError(f"not a maia gallery export: {what}")

    need(isinstance(doc, dict) and doc.get("format") == FORMAT, "no 'maia-gallery' format line")
    need(isinstance(doc.get("schema"), int) and doc["schema"] <= schema.VERSION,
         f"schema {doc.get('schema')!r}: made by a newer maia (this one reads up to {schema.VERSION})")
    need(isinstance(doc.get("pieces"), list) and isinstance(doc.get("votes"), list), "no pieces or votes")
    for p in doc["pieces"]:
        need(isinstance(p, dict) and all(k in p for k in (*PIECE_FIELDS, "files")), "a piece lacks a field")
        need(isinstance(p["uid"], str) and UID.fullmatch(p["uid"]), f"bad piece id {p['uid']!r}")
        clean_title(p["title"], gallery.quotas.max_title)
        need(isinstance(p["owner"], str) and (p["owner"] == SHELF_OWNER or HASH.fullmatch(p["owner"])), "bad owner")
        need(isinstance(p["settings"], dict) and isinstance(p["files"], dict) and "midi" in p["files"],
             f"piece {p['uid']}: bad settings or files")
        for kind, f in p["files"].items():
            need(kind in EXTENSIONS and isinstance(f, dict) and isinstance(f.get("hash"), str)
                 and HASH.fullmatch(f["hash"]) and isinstance(f.get("size"), int)
                 and 0 <= f["size"] <= gallery.quotas.max_file_bytes, f"piece {p['uid']}: bad {kind!r} file")
    for v in doc["votes"]:
        need(isinstance(v, dict) and all(k in v for k in VOTE_FIELDS), "a vote lacks a field")
        need(all(isinstance(v[k], str) and UID.fullmatch(v[k]) for k in ("a", "b")) and v["a"] < v["b"]
             and v["choice"] in CHOICES and isinstance(v["voter"], str) and HASH.fullmatch(v["voter"]), "bad vote")


def import_(gallery: Gallery, path: str | Path) -> dict:
    """Adds an export's pieces, files and votes to ``gallery``, skipping pieces (by id) and votes already
    there; returns the counts added. InputError for a file that is not a whole, untampered export."""
    path = Path(path)
    try:
        z = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: not a maia gallery export ({e})") from None
    with z:
        try:
            doc = json.loads(z.read("gallery.json"))
        except (KeyError, ValueError, zipfile.BadZipFile) as e:
            raise InputError(f"{path}: not a maia gallery export (gallery.json: {e})") from None
        _check(doc, gallery)
        wanted = {Blobs.name(f["hash"], kind): (kind, f) for p in doc["pieces"] for kind, f in p["files"].items()}
        members = {i.filename: i for i in z.infolist()}
        with gallery.blobs.saving():  # files first, then the rows: the sweep waits for both
            for name, (kind, f) in wanted.items():
                info = members.get(f"files/{name}")
                if info is None or info.file_size != f["size"]:
                    raise InputError(f"{path}: the file {name} is missing or of the wrong size")
                data = z.read(info)
                if hashlib.sha256(data).hexdigest() != f["hash"]:
                    raise InputError(f"{path}: the file {name} does not match its hash")
                gallery.blobs.put(data, kind)
            added = {"pieces": 0, "votes": 0}
            with gallery._write() as conn:
                for p in doc["pieces"]:
                    if conn.execute("SELECT 1 FROM pieces WHERE uid = ?", (p["uid"],)).fetchone():
                        continue
                    values = {**{k: p[k] for k in PIECE_FIELDS}, "settings": json.dumps(p["settings"], sort_keys=True),
                              "shelf": int(bool(p["shelf"])), "hidden": int(bool(p["hidden"]))}
                    cur = conn.execute(f"INSERT INTO pieces ({', '.join(PIECE_FIELDS)}) VALUES "
                                       f"({', '.join('?' * len(PIECE_FIELDS))})", [values[k] for k in PIECE_FIELDS])
                    conn.executemany("INSERT INTO files (piece, kind, hash, size) VALUES (?, ?, ?, ?)",
                                     [(cur.lastrowid, k, f["hash"], f["size"]) for k, f in p["files"].items()])
                    added["pieces"] += 1
                for v in doc["votes"]:
                    cur = conn.execute(f"INSERT OR IGNORE INTO votes ({', '.join(VOTE_FIELDS)}) VALUES "
                                       f"({', '.join('?' * len(VOTE_FIELDS))})", [v[k] for k in VOTE_FIELDS])
                    added["votes"] += cur.rowcount
    return added
