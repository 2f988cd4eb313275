"""Hand-made mutants of maia's core (encoding, generate, vocab): does the test suite notice each change?

Usage: .venv/bin/python -m scripts.mutants [--only ID,...] [--json OUT]

Steps:
1. Copy the repository's tracked files into a temporary folder (the working tree is never touched, so
   training or tests running beside this are not affected).
2. Run each mutant's tests there once unmutated: they must pass.
3. For each mutant: replace one snippet of one file (the snippet must occur exactly once), run the tests
   that cover that file (pytest -x), and record the mutant as killed (the tests failed) or survived; put the
   file back.
4. Print a Markdown table (id, file, change, tests, result, seconds). docs/testing.md gives the reason for
   each survivor.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENCODING_TESTS = ["tests/test_encoding.py", "tests/test_fuzz.py", "tests/test_merges.py"]
GENERATE_TESTS = ["tests/test_generate.py", "tests/test_controls.py", "tests/test_fim.py"]
VOCAB_TESTS = ["tests/test_vocab.py", "tests/test_encoding.py"]

# (id, file, original, mutated, tests)
MUTANTS = [
    ("E1", "maia/encoding.py", "np.asarray(velocity) * n_bins // 128", "np.asarray(velocity) * n_bins // 127", ENCODING_TESTS),
    ("E2", "maia/encoding.py", "(2 * level + 1) * 128 // (2 * n_bins)", "(2 * level) * 128 // (2 * n_bins)", ENCODING_TESTS),
    ("E3", "maia/encoding.py", "TEMPO_RANGE = (10.0, 1000.0)", "TEMPO_RANGE = (10.0, 400.0)", ENCODING_TESTS),
    ("E4", "maia/encoding.py", "    if quarters > limit:", "    if quarters >= limit:", ENCODING_TESTS),
    ("E5", "maia/encoding.py", "    if size > max_bytes:", "    if size >= max_bytes:", ENCODING_TESTS),
    ("E6", "maia/encoding.py", "time * 512 + kind * 256 + p", "time * 512 - kind * 256 + p", ENCODING_TESTS),
    ("E7", "maia/encoding.py", "changed = np.r_[True, on_levels[1:] != on_levels[:-1]]",
     "changed = np.r_[True, on_levels[1:] == on_levels[:-1]]", ENCODING_TESTS),
    ("E8", "maia/encoding.py", "n_wait = -(-delta // cfg.max_wait)", "n_wait = delta // cfg.max_wait", ENCODING_TESTS),
    ("E9", "maia/encoding.py", "vocab.wait_offset + delta[w] - (n_wait[w] - 1) * cfg.max_wait",
     "vocab.wait_offset + delta[w] - n_wait[w] * cfg.max_wait", ENCODING_TESTS),
    ("E10", "maia/encoding.py", "            if out or sounding or t:\n                break",
     "            break", ENCODING_TESTS),
    ("E11", "maia/encoding.py", "        elif w0 + 1 <= i <= w0 + max_wait:", "        elif w0 + 1 <= i < w0 + max_wait:",
     ENCODING_TESTS),
    ("E12", "maia/encoding.py", "t, velocity = 0, bin_velocity(n_vel * 5 // 8, n_vel)",
     "t, velocity = 0, bin_velocity(n_vel // 2, n_vel)", ENCODING_TESTS),
    ("G1", "maia/generate.py", "p.cumsum(-1) - p >= cfg.top_p", "p.cumsum(-1) > cfg.top_p", GENERATE_TESTS),
    ("G2", "maia/generate.py", "logits = logits / cfg.temperature", "logits = logits * cfg.temperature", GENERATE_TESTS),
    ("G3", "maia/generate.py", "torch.topk(logits, cfg.top_k, dim=-1)", "torch.topk(logits, max(1, cfg.top_k - 1), dim=-1)",
     GENERATE_TESTS),
    ("G4", "maia/generate.py", "(probs.cumsum(-1) < u.unsqueeze(-1)", "(probs.cumsum(-1) <= u.unsqueeze(-1)",
     GENERATE_TESTS),
    ("G5", "maia/generate.py", "lo <= self.top_k <= hi", "lo <= self.top_k < hi", GENERATE_TESTS),
    ("G6", "maia/generate.py", "0 <= self.seed < 2**62", "0 < self.seed < 2**62", GENERATE_TESTS),
    ("G7", "maia/generate.py", "manual_seed(seed + i)", "manual_seed(seed)", GENERATE_TESTS),
    ("G8", "maia/generate.py", "    bias[vocab.special_ids] = float(\"-inf\")\n", "", GENERATE_TESTS),
    ("G9", "maia/generate.py", "    no_end[vocab.end_id] = float(\"-inf\")\n", "", GENERATE_TESTS),
    ("G10", "maia/generate.py", "self.keep = max(self.head.shape[1] + 1, int(self.max_context * cfg.keep_fraction))",
     "self.keep = max(self.head.shape[1] + 1, int(self.max_context * cfg.keep_fraction) + 1)", GENERATE_TESTS),
    ("G11", "maia/generate.py", "if self.max_context is not None and len(self) > self.max_context:",
     "if self.max_context is not None and len(self) > self.max_context + 1:", GENERATE_TESTS),
    ("V1", "maia/vocab.py", "name = (name or \"\").strip().lower().replace(\" \", \"_\")",
     "name = (name or \"\").strip().replace(\" \", \"_\")", VOCAB_TESTS),
    ("V2", "maia/vocab.py", "self.wait_offset = len(toks) - 1", "self.wait_offset = len(toks)", VOCAB_TESTS),
    ("V3", "maia/vocab.py", "return self.composer_offset <= i < self.fim_offset", "return self.composer_offset <= i <= self.fim_offset",
     VOCAB_TESTS),
    ("V4", "maia/vocab.py", "return [self.pad_id, self.start_id, *range(self.composer_offset, self.base_size)]",
     "return [self.pad_id, *range(self.composer_offset, self.base_size)]", VOCAB_TESTS),
    ("V5", "maia/vocab.py", "return hits[0] if len(hits) == 1 else None", "return hits[0] if hits else None", VOCAB_TESTS),
    ("V6", "maia/vocab.py", "if not (1 <= self.n_velocity_bins <= 127", "if not (1 <= self.n_velocity_bins <= 128", VOCAB_TESTS),
]


def copy_tree(dest: Path) -> None:
    """The repository's tracked (and new, unignored) files, as in the working tree."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for f in files:
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def run_tests(repo: Path, tests: list[str], timeout: float) -> tuple[bool, float]:
    """(passed, seconds) of pytest -x over ``tests`` in ``repo``."""
    t = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=repo,
                           capture_output=True, text=True, timeout=timeout)
        ok = r.returncode == 0
    except subprocess.TimeoutExpired:
        ok = False  # a mutant that makes the tests hang is caught by the suite's timeout
    return ok, time.monotonic() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated mutant ids")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not a.only or m[0] in a.only.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="maia-mutants-") as tmp:
        repo = Path(tmp)
        copy_tree(repo)
        for tests in {tuple(m[4]) for m in chosen}:  # 2.
            ok, _ = run_tests(repo, list(tests), a.timeout)
            if not ok:
                print(f"the unmutated tests fail: {' '.join(tests)}", file=sys.stderr)
                return 1
        for mid, file, old, new, tests in chosen:  # 3.
            path = repo / file
            text = path.read_text()
            if text.count(old) != 1:
                print(f"{mid}: the snippet occurs {text.count(old)} times in {file}", file=sys.stderr)
                return 1
            path.write_text(text.replace(old, new))
            passed, seconds = run_tests(repo, tests, a.timeout)
            path.write_text(text)
            rows.append({"id": mid, "file": file, "from": old.strip(), "to": new.strip() or "(line removed)",
                         "tests": [Path(t).name for t in tests], "result": "survived" if passed else "killed",
                         "seconds": round(seconds, 1)})
            print(f"{mid}: {rows[-1]['result']} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    print("| id | file | change | result | seconds |\n|---|---|---|---|---:|")
    for r in rows:
        change = f"`{r['from'][:70]}` → `{r['to'][:70]}`".replace("|", "\\|").replace("\n", " ")
        print(f"| {r['id']} | {r['file']} | {change} | {r['result']} | {r['seconds']} |")
    killed = sum(r["result"] == "killed" for r in rows)
    print(f"\n{killed} of {len(rows)} mutants killed; survivors: "
          f"{', '.join(r['id'] for r in rows if r['result'] == 'survived') or 'none'}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
