#!/usr/bin/env python3
"""Re-finds the must-fail seed of every planted bug after a change of node behaviour.

A change that moves scheduling (a new message, a timer) changes every run: a pinned must-fail
seed may then pass. For each bug this runs a campaign in its scenario, takes the lowest failing
seed (with the wanted invariant, where one is named), and writes seeds/fail-BUG.toml with a
comment saying why it must fail. Then run `lakesim pin seeds` and `cargo test`.

Usage: scripts/refind-corpus.py [BUG...]   (default: every bug below)
Needs a release build (cargo build --release).
"""
import glob, os, subprocess, sys, tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAKESIM = os.path.join(ROOT, "target", "release", "lakesim")
WORK = os.environ.get("CORPUS_WORK", "/tmp/lakesim-corpus")

# Why each bug's seed must fail (the file's first line).
ABOUT = {
    "ack-before-fsync": "appends acknowledged before the fsync that follows them are lost when a crash lands in between, so committed WAL would not survive the next election.",
    "vote-before-persist": "a vote answered before the persist of its term that follows it is counted by a proposer while a crash could still undo it.",
    "skip-truncate-on-elect": "an acceptor that keeps its divergent suffix on election holds WAL below its commit LSN that disagrees with the committed WAL.",
    "elect-by-flush-lsn": "a proposer that adopts the longest log regardless of its term throws away committed WAL of a newer term.",
    "commit-old-term": "(Raft's figure 8) counting acknowledgements of older-term WAL below the epoch start commits WAL that another branch's election would undo.",
    "control-file-unsynced": "a control file written without fsync and directory sync leaves a counted vote that a crash would undo.",
    "getpage-stale-lsn": "a GetPage for an LSN not yet ingested, answered from what the pageserver has, returns a page older than asked for.",
    "image-wrong-lsn": "an image layer labelled one record before the state it holds differs from the replay of the WAL to its label.",
    "skip-layer-checksum": "a delta layer loaded without its layer checksum lets rotted record bytes into reconstructed pages (records are vouched for by the layer checksum alone).",
    "consistent-lsn-before-sync": "disk_consistent_lsn made durable before the layer file's sync promises WAL that a crash would take away.",
    "ingest-skip-on-switch": "a record dropped when ingest switches safekeeper is missing from every page built after it.",
    "wal-removed-before-upload": "safekeepers remove WAL that the object store's index does not cover, so a pageserver that loses its disk could not rebuild.",
    "ingest-never-switch": "a pageserver that keeps streaming from a safekeeper lost for good never catches up again.",
    "image-load-unverified": "an image layer loaded without any check serves a rotted page whose own checksum fails.",
    "vote-twice-in-term": "an acceptor that votes for a second proposer in one term lets two proposers lead the same term.",
    "redo-offset-off-by-one": "a redo bug shared by the compute and the pageserver: they agree with each other, only the independent oracle sees the page is wrong.",
    "read-lsn-too-old": "a read of the latest version asked below the last acknowledged commit (a stale last-written-LSN cache) misses the client's own write.",
    "txn-write-lost": "a transaction acknowledged with one of its writes missing from the committed WAL.",
    "object-store-silent": "an object store that takes requests and never answers: uploads never complete, so remote_consistent_lsn stays behind what the pageserver flushed.",
    "images-never-created": "a pageserver that never creates an image layer makes reads replay ever longer chains.",
    "index-never-uploaded": "a pageserver that uploads its layers but never the index naming them leaves remote_consistent_lsn where it was, so the object store never covers what it flushed.",
    "replay-keeps-next-xid": "a compute rebuilt from WAL that does not move its next xid past the xids it replays commits a used xid again.",
    "refused-acceptor-ignored": "a leader that leaves out an acceptor which voted for a lost proposer of its term never confirms it, so truncate_lsn and WAL removal stall on every safekeeper.",
    "fsync-retry-after-eio": "(fsyncgate) a WAL fsync that failed and dropped the dirty data, retried and trusted, acknowledges WAL the safekeeper's disk does not hold.",
    "enospc-ack-anyway": "an append whose WAL write failed on a full disk, acknowledged anyway, counts toward a commit the safekeeper's disk does not hold.",
    "read-error-as-eof": "a WAL read error taken for the end of the WAL makes recovery cut WAL the safekeeper had acknowledged, below its commit LSN.",
    "rotted-control-file-trusted": "a control file copy that fails its checksum but still parses, trusted, hands the safekeeper a term, vote or commit LSN it never persisted.",
    "process-global-counter": "a first campaign delayed by a process-wide counter makes two runs of one seed in one process differ (the replay runs it twice and compares).",
}
# Where to look (scenario, invariant wanted or None); storm otherwise.
WANT = {
    "image-load-unverified": ("bitrot", "no-corrupt-page"),
    "images-never-created": ("calm", None),
    "object-store-silent": ("object-store-outage", "liveness"),
    "refused-acceptor-ignored": ("storm", "liveness"),
    "index-never-uploaded": ("calm", "liveness"),
    "fsync-retry-after-eio": ("disk-errors", None),
    "enospc-ack-anyway": ("disk-errors", None),
    "read-error-as-eof": ("disk-errors", None),
    "rotted-control-file-trusted": ("safekeeper-disk-loss", None),
    "process-global-counter": ("calm", "nondeterminism"),
}
# Flags a bug's campaign needs to be caught at all.
EXTRA = {"process-global-counter": ["--check-determinism", "100"]}


def campaign(bug, scenario, seeds):
    out = os.path.join(WORK, f"{bug}-{scenario}-{seeds}")
    subprocess.run(["rm", "-rf", out], check=True)
    cmd = [LAKESIM, "fuzz", "--seeds", str(seeds), "--scenario", scenario, "--bug", bug, "--out", out]
    cmd += EXTRA.get(bug, [])
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return glob.glob(os.path.join(out, "fail-*.toml"))


def lowest(files, invariant):
    best = None
    for f in files:
        with open(f, "rb") as fh:
            d = tomllib.load(fh)
        if invariant and d["invariant"] != invariant:
            continue
        if best is None or d["seed"] < best[1]["seed"]:
            best = (f, d)
    return best


def main():
    bugs = sys.argv[1:] or list(ABOUT)
    missing = []
    for bug in bugs:
        scenario, invariant = WANT.get(bug, ("storm", None))
        best = None
        for seeds in (150, 1000):
            best = lowest(campaign(bug, scenario, seeds), invariant)
            if best:
                break
        if best is None:
            print(f"MISSING {bug}: no failing seed in 1000 {scenario} seeds")
            missing.append(bug)
            continue
        f, d = best
        text = open(f).read()
        cut = text.find("\n[plan")
        body = text if cut < 0 else text[: cut + 1]
        dest = os.path.join(ROOT, "seeds", f"fail-{bug}.toml")
        with open(dest, "w") as fh:
            fh.write(f"# Must fail: {ABOUT[bug]}\n" + body)
        print(f"{bug}: seed {d['seed']} {d['scenario']} {d['invariant']} ({d['caught_by']})")
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
