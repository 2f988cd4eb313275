"""maia.gallery's store on a real SQLite database in tmp_path: pieces, owners, quotas, the listening room's
pairs and votes, migrations, a newer or corrupt database, export/import, and paths no request can name."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zipfile

import pytest

from maia.errors import GalleryError, InputError
from maia.gallery import open_gallery, schema
from maia.gallery.store import DB_NAME, Gallery, Quotas
from maia.gallery.transfer import document, export, import_
from maia.limits import Limits

ME, YOU = "me" * 16, "you" * 11  # browser tokens, as the page makes them (16..128 of [A-Za-z0-9_-])


def save(g: Gallery, title="Nocturne", token=ME, n=0, prompt="example:lacrimosa.mid · mozart", variant="piano", **kw):
    files = {"midi": f"MThd{n}".encode(), "wav": f"RIFF{n}".encode(), "roll": b"\x89PNG" + bytes([n % 256])}
    defaults = dict(composer="mozart", model="piano", key="D minor", seconds=12.5, notes=40,
                    settings={"tokens": 256, "top_k": 5}, seed=n, link=f"seed={n}", prompt=prompt, variant=variant)
    return g.save(title, token, files, **{**defaults, **kw})


def test_save_list_get_and_files_by_content(tmp_path):
    g = Gallery(tmp_path)
    first = save(g, "first", n=1, composer="bach")
    second = save(g, "second", n=2, model="lstm")
    pieces, total = g.list()
    assert total == 2 and [p.uid for p in pieces] == [second, first]  # newest first
    p = g.get(first)
    assert (p.title, p.composer, p.key, p.seed, p.settings, p.link) == ("first", "bach", "D minor", 1,
                                                                       {"tokens": 256, "top_k": 5}, "seed=1")
    assert p.files["midi"].read_bytes() == b"MThd1"
    assert p.files["midi"].name == hashlib.sha256(b"MThd1").hexdigest() + ".mid"
    assert p.files["midi"].parent.parent == tmp_path / "files"
    assert [x.uid for x in g.list(composer="bach")[0]] == [first]
    assert [x.uid for x in g.list(model="lstm")[0]] == [second]
    assert g.list(key="C major") == ([], 0)
    assert g.facets() == {"composer": ["bach", "mozart"], "model": ["lstm", "piano"], "key": ["D minor"]}
    assert g.get("f" * 16) is None
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_pages_of_24_and_best_rated_first(tmp_path):
    g = Gallery(tmp_path, Quotas(saves_per_minute=100))
    uids = [save(g, f"piece {i}", n=i, created=1000.0 + i, variant=f"v{i % 2}") for i in range(30)]
    first, total = g.list(page=0)
    second, _ = g.list(page=1)
    assert total == 30 and len(first) == 24 and len(second) == 6
    assert [p.uid for p in first + second] == uids[::-1]
    g.vote(uids[0], uids[1], "a", YOU)  # piece 0 beats piece 1 (same prompt, different variants)
    g.vote(uids[0], uids[3], "a", YOU)
    rated = g.list(sort="rated")[0] + g.list(sort="rated", page=1)[0]
    assert rated[0].uid == uids[0] and rated[0].score == pytest.approx(3 / 4)
    assert rated[-1].uid in (uids[1], uids[3]) and rated[-1].score == pytest.approx(1 / 3)


def test_titles_are_stored_and_returned_as_typed(tmp_path):
    g = Gallery(tmp_path)
    typed = "<script>alert('x')</script> <b>Nocturne</b> & \"friends\" é ♭"
    uid = save(g, typed)
    assert g.get(uid).title == typed
    assert g.list()[0][0].title == typed
    assert g.get(save(g, "  tab\tand\nnewline \x00 ", n=2)).title == "tab and newline"  # one line
    with pytest.raises(InputError, match="title"):
        save(g, "   ")
    with pytest.raises(InputError, match="at most 120"):
        save(g, "x" * 121)


def test_only_the_owner_deletes_and_the_operator_hides(tmp_path):
    g = Gallery(tmp_path)
    mine, yours = save(g, "mine", n=1), save(g, "yours", token=YOU, n=2)
    with pytest.raises(InputError, match="only the browser that saved"):
        g.delete(yours, ME)
    files = g.get(mine).files
    g.delete(mine, ME)
    assert g.get(mine) is None and not any(f.exists() for f in files.values())  # its files went with it
    assert g.get(yours) is not None
    g.hide(yours)
    assert g.get(yours) is None and g.list() == ([], 0) and g.get(yours, include_hidden=True).hidden
    g.hide(yours, hidden=False)
    assert g.get(yours) is not None
    with pytest.raises(InputError, match="no piece"):
        g.hide("0" * 16)


def test_shared_files_outlive_one_owner_deleting(tmp_path):
    g = Gallery(tmp_path)
    a, b = save(g, "a", n=7), save(g, "b", token=YOU, n=7)  # same content, stored once
    assert g.counts()["files"] == 6 and len(list((tmp_path / "files").glob("*/*"))) == 3
    g.delete(a, ME)
    assert all(f.read_bytes() for f in g.get(b).files.values())


def test_shelf_pieces_belong_to_no_browser(tmp_path):
    g = Gallery(tmp_path)
    uid = g.save("maia's work", None, {"midi": b"MThd"}, composer="mozart", model="piano", shelf=True)
    assert g.get(uid).shelf and not g.get(uid).owned_by(ME)
    with pytest.raises(InputError, match="only the browser"):
        g.delete(uid, ME)
    with pytest.raises(InputError, match="no gallery token"):
        g.save("no token", None, {"midi": b"MThd"}, composer="mozart", model="piano")


def test_quotas(tmp_path):
    g = Gallery(tmp_path, Quotas(max_file_bytes=10, max_pieces_per_owner=3, saves_per_minute=2, votes_per_minute=1))
    with pytest.raises(InputError, match="over the gallery's limit"):
        g.save("big", ME, {"midi": b"x" * 11}, composer="c", model="m")
    with pytest.raises(InputError, match="no MIDI"):
        g.save("no midi", ME, {"wav": b"x"}, composer="c", model="m")
    with pytest.raises(InputError, match="not a kind of file"):
        g.save("odd", ME, {"midi": b"x", "../../etc/passwd": b"x"}, composer="c", model="m")
    save(g, "1", n=1, created=0.0)
    save(g, "2", n=2, created=1.0)
    with pytest.raises(InputError, match="too many saves"):
        save(g, "3", n=3, created=2.0, variant="other")
    third = save(g, "3", n=3, created=1000.0, variant="other")
    with pytest.raises(InputError, match="the most it may keep"):
        save(g, "4", n=4, created=5000.0)
    first = g.list()[0][-1].uid
    g.vote(first, third, "b", YOU, now=10_000.0)
    second = g.list()[0][1].uid
    with pytest.raises(InputError, match="too many votes"):
        g.vote(second, third, "a", YOU, now=10_030.0)
    g.vote(second, third, "a", YOU, now=10_061.0)


def test_pairs_and_votes(tmp_path):
    g = Gallery(tmp_path)
    a = save(g, "a", n=1, variant="piano · top-k 5")
    b = save(g, "b", n=2, variant="lstm · top-k 5")
    same_variant = save(g, "c", n=3, variant="piano · top-k 5")
    other_prompt = save(g, "d", n=4, variant="sparse", prompt="nothing · bach")
    pair = g.next_pair(ME)
    assert {pair[0].uid, pair[1].uid} in ({a, b}, {same_variant, b})
    with pytest.raises(InputError, match="not a pair"):
        g.vote(a, same_variant, "a", ME)
    with pytest.raises(InputError, match="not a pair"):
        g.vote(a, other_prompt, "a", ME)
    with pytest.raises(InputError, match="a vote is one of"):
        g.vote(a, b, "both", ME)
    g.vote(b, a, "a", ME)  # b better, given in either order
    with pytest.raises(InputError, match="voted on this pair already"):
        g.vote(a, b, "same", ME)
    g.vote(same_variant, b, "same", ME)
    assert g.next_pair(ME) is None and g.next_pair(YOU) is not None
    assert sorted(g.games()) == sorted([("lstm · top-k 5", "piano · top-k 5", 1.0) if a > b else
                                        ("piano · top-k 5", "lstm · top-k 5", 0.0),
                                        (min((b, "lstm · top-k 5"), (same_variant, "piano · top-k 5"))[1],
                                         max((b, "lstm · top-k 5"), (same_variant, "piano · top-k 5"))[1], 0.5)])
    g.delete(a, ME)
    assert len(g.games()) == 2  # votes outlive the pieces: the ratings do not move when an owner deletes


def test_no_request_can_name_a_path(tmp_path):
    g = Gallery(tmp_path / "gallery")
    (tmp_path / "secret.mid").write_bytes(b"secret")
    for bad in ("../secret", "../../etc/passwd", "/etc/passwd", "0" * 15, "0" * 17, "G" * 16, None, 7):
        assert g.get(bad) is None
        with pytest.raises(InputError):
            g.delete(bad, ME)
        with pytest.raises(InputError):
            g.vote(bad, "0" * 16, "a", ME)
    for bad in ("../../secret", "a" * 63, "A" * 64):
        with pytest.raises(ValueError):
            g.blobs.path(bad, "midi")
    with pytest.raises(ValueError):
        g.blobs.path("a" * 64, "../midi")
    for bad in ("../" * 8, "x" * 15, "a b" * 10, "é" * 20):
        with pytest.raises(InputError, match="token"):
            save(g, token=bad)


# ---- migrations, newer and corrupt databases -------------------------------------------------------------
def _database_at(folder, version: int):
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(folder / DB_NAME, isolation_level=None)
    schema.migrate(conn, target=version)
    return conn


@pytest.mark.parametrize("version", range(1, schema.VERSION))
def test_migrates_from_each_earlier_schema(tmp_path, version):
    conn = _database_at(tmp_path, version)
    digest = hashlib.sha256(b"MThd old").hexdigest()
    (tmp_path / "files" / digest[:2]).mkdir(parents=True)
    (tmp_path / "files" / digest[:2] / f"{digest}.mid").write_bytes(b"MThd old")
    conn.execute("INSERT INTO pieces (uid, title, composer, model, owner, created) VALUES "
                 "('0123456789abcdef', 'old', 'bach', 'lstm', 'maia', 1.0)")
    conn.execute("INSERT INTO files VALUES (1, 'midi', ?, 8)", (digest,))
    conn.close()
    g = Gallery(tmp_path)
    with sqlite3.connect(tmp_path / DB_NAME) as c:
        assert schema.version(c) == schema.VERSION
    old = g.get("0123456789abcdef")
    assert old.title == "old" and old.files["midi"].read_bytes() == b"MThd old"  # kept, not swept
    assert (old.prompt, old.variant) == ("", "")
    new = save(g, "new")
    assert g.list()[1] == 2 and g.get(new).variant == "piano"


def test_a_new_database_gets_every_migration(tmp_path):
    Gallery(tmp_path)
    with sqlite3.connect(tmp_path / DB_NAME) as c:
        assert schema.version(c) == schema.VERSION == len(schema.MIGRATIONS)
        assert {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} >= {"pieces", "files",
                                                                                                    "votes"}


def _one_line(e) -> str:
    text = str(e.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_a_newer_database_is_refused_in_one_line(tmp_path):
    _database_at(tmp_path, schema.VERSION).execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    with pytest.raises(GalleryError) as e:
        Gallery(tmp_path)
    assert "newer than this maia" in _one_line(e)
    gallery, problem = open_gallery(Limits(data_dir=str(tmp_path)))
    assert gallery is None and "newer" in problem


@pytest.mark.parametrize("damage", ["garbage", "truncated", "unreadable"])
def test_a_corrupt_or_unreadable_database_is_one_line(tmp_path, damage, capsys, monkeypatch):
    g = Gallery(tmp_path)
    save(g)
    db = tmp_path / DB_NAME
    if damage == "garbage":
        db.write_bytes(b"this is not a database" * 100)
    elif damage == "truncated":
        with sqlite3.connect(db) as c:
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        data = db.read_bytes()
        db.write_bytes(data[:100] + b"\xff" * (len(data) - 100))
    else:
        db.unlink()
        db.mkdir()  # a folder where the file should be: cannot be opened
    with pytest.raises(GalleryError) as e:
        Gallery(tmp_path).list()
    assert str(db) in _one_line(e)
    from maia.__main__ import main

    monkeypatch.setenv("MAIA_DATA_DIR", str(tmp_path))
    assert main(["gallery", "list"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("maia: ") and "\n" not in err


# ---- export and import ----------------------------------------------------------------------------------
def test_export_import_round_trip(tmp_path):
    a = Gallery(tmp_path / "a")
    shelf = a.save("maia's <i>work</i>", None, {"midi": b"MThd shelf", "musicxml": b"<score/>"}, composer="mozart",
                   model="piano", shelf=True, settings={"top_k": 5}, prompt="example:lacrimosa.mid · mozart",
                   variant="lstm")
    one = save(a, "one", n=1)
    two = save(a, "two", token=YOU, n=2, variant="lstm")
    hidden = save(a, "hidden", n=3, variant="sparse")
    a.hide(hidden)
    a.vote(one, two, "a", ME)
    a.vote(shelf, one, "same", YOU)
    n = export(a, tmp_path / "g.zip")
    assert n == {"pieces": 4, "votes": 2, "files": 11}
    b = Gallery(tmp_path / "b")
    assert import_(b, tmp_path / "g.zip") == {"pieces": 4, "votes": 2}
    assert document(b) == document(a)
    for uid in (shelf, one, two, hidden):
        pa, pb = a.get(uid, include_hidden=True), b.get(uid, include_hidden=True)
        assert {k: f.read_bytes() for k, f in pa.files.items()} == {k: f.read_bytes() for k, f in pb.files.items()}
    assert import_(b, tmp_path / "g.zip") == {"pieces": 0, "votes": 0}  # nothing twice
    assert b.counts() == a.counts()
    export(b, tmp_path / "again.zip")
    with zipfile.ZipFile(tmp_path / "g.zip") as z1, zipfile.ZipFile(tmp_path / "again.zip") as z2:
        assert sorted(z1.namelist()) == sorted(z2.namelist())
        assert json.loads(z1.read("gallery.json")) == json.loads(z2.read("gallery.json"))


def _tampered(tmp_path, change) -> str:
    a = Gallery(tmp_path / "a")
    save(a, "one")
    export(a, tmp_path / "g.zip")
    with zipfile.ZipFile(tmp_path / "g.zip") as z:
        doc = json.loads(z.read("gallery.json"))
        files = {n: z.read(n) for n in z.namelist() if n != "gallery.json"}
    change(doc, files)
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.writestr("gallery.json", json.dumps(doc))
        for name, data in files.items():
            z.writestr(name, data)
    return str(tmp_path / "bad.zip")


def _path_hash(doc, files):
    doc["pieces"][0]["files"]["midi"]["hash"] = "../../../evil"


def _wrong_content(doc, files):
    name = next(n for n in files if n.endswith(".mid"))
    files[name] = b"MThd evil"


def _newer(doc, files):
    doc["schema"] = schema.VERSION + 1


def _bad_uid(doc, files):
    doc["pieces"][0]["uid"] = "../x"


@pytest.mark.parametrize("change", [_path_hash, _wrong_content, _newer, _bad_uid])
def test_an_import_checks_everything_before_it_keeps_anything(tmp_path, change):
    bad = _tampered(tmp_path, change)
    b = Gallery(tmp_path / "b")
    with pytest.raises(InputError):
        import_(b, bad)
    assert b.counts() == {"pieces": 0, "files": 0, "votes": 0}
    assert not (tmp_path / "evil").exists() and not list(tmp_path.glob("**/evil*"))


def test_cli_export_import_hide_and_ratings(tmp_path, monkeypatch, capsys):
    from maia.__main__ import main

    a = Gallery(tmp_path / "a")
    one, two = save(a, "one", n=1), save(a, "two", n=2, variant="lstm")
    a.vote(one, two, "a", YOU)
    monkeypatch.setenv("MAIA_DATA_DIR", str(tmp_path / "a"))
    assert main(["gallery", "export", str(tmp_path / "g.zip")]) == 0
    assert main(["gallery", "hide", one]) == 0 and a.get(one) is None
    assert main(["gallery", "hide", "../../etc"]) == 1
    capsys.readouterr()
    assert main(["gallery", "ratings", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["votes"] == 1 and [r["variant"] for r in out["ratings"]] == ["piano", "lstm"]
    monkeypatch.setenv("MAIA_DATA_DIR", str(tmp_path / "b"))
    assert main(["gallery", "import", str(tmp_path / "g.zip")]) == 0
    assert main(["gallery", "list"]) == 0
    assert f"{one}  piano" in capsys.readouterr().out
