#!/usr/bin/env bash
# capture-pg-trace.sh — capture real PostgreSQL WAL traces of pgbench, once with
# full_page_writes=off and once with full_page_writes=on, for calibrating lakesim's
# workload and WAL model against the real thing.
#
# Usage:  scripts/capture-pg-trace.sh [OUTDIR]        (OUTDIR defaults to traces/)
#
# For each mode M in {off, on} it builds a fresh throwaway cluster and writes to OUTDIR:
#   pgbench-fpw-M.pages.tsv     pd_lower/pd_upper of every block of every pgbench relation
#                               at the start LSN (columns: spc db relfilenode relname blk
#                               lower upper; spc/db/relfilenode match pg_waldump's
#                               "rel SPC/DB/RELFILENODE blk N").
#   pgbench-fpw-M.waldump.gz    pg_waldump -b (--bkp-details) of [start_lsn, dump_end_lsn):
#                               every record, every block reference and every full-page
#                               image with its hole, gzip -9.
#   pgbench-fpw-M.stats.txt     pg_waldump --stats=record over the same range.
#   pgbench-fpw-M.capture.toml  settings, LSNs, wal_bytes, pgbench's transaction count,
#                               record count and the sums of the rec/tot record lengths
#                               (counts and sums over the dumped range; wal_bytes is
#                               end_lsn - start_lsn, the pgbench work only).
#
# Sequence per mode: initdb; start server; pgbench -i -s SCALE; CREATE EXTENSION
# pageinspect; VACUUM (whole database, clears catalog garbage); CHECKPOINT;
# start_lsn := pg_current_wal_insert_lsn(); page snapshot (read-only, no WAL);
# pgbench -n (no vacuum) for DURATION seconds at RATE tps; end_lsn :=
# pg_current_wal_insert_lsn(); CHECKPOINT; dump_end_lsn := pg_current_wal_insert_lsn();
# stop server (flushes all WAL to disk); pg_waldump of [start_lsn, dump_end_lsn).
# Because the snapshot is taken right after a CHECKPOINT, with full_page_writes=on the
# first change to every page after start_lsn carries a full-page image.
#
# Why the dump runs past end_lsn: checkpoints are spread (checkpoint_completion_target
# 0.9), and a checkpoint's redo point (where full-page images restart) is only recorded
# in its CHECKPOINT_ONLINE record, written when the checkpoint finishes. The timed
# checkpoint that starts near the end of the run (about 90 s) would finish after end_lsn,
# so its redo point would be missing from [start_lsn, end_lsn) although FPIs already
# restarted there. The explicit CHECKPOINT after pgbench makes that in-progress
# checkpoint complete at once (writing its CHECKPOINT_ONLINE record), then performs one
# more checkpoint of its own; dump_end_lsn is read after it, so the dump ends with those
# records. The script checks that only XLOG and Standby records (checkpoints, running
# xacts) lie in [end_lsn, dump_end_lsn) and fails otherwise: no pgbench work lies there.
#
# Safety: PostgreSQL refuses to run as root, so the server and all tools run as the
# `postgres` user via `runuser -u postgres --`. Everything lives in a fresh `mktemp -d`
# directory (data dir, socket dir, server log); the server listens only on a Unix socket
# in that directory (listen_addresses='') on a non-default port, so no system cluster is
# touched. An EXIT trap always stops the server and removes the temp dir.
#
# Environment (defaults in brackets):
#   SCALE [1]        pgbench -i -s: 100,000 accounts, 1 branch, 10 tellers per unit.
#   CLIENTS [4]      pgbench -c: concurrent client sessions (-j 1: one pgbench thread).
#   DURATION [95]    pgbench -T: seconds of load.
#   RATE [100]       pgbench -R: rate limit in transactions/s over all clients, so a
#                    run is about DURATION*RATE transactions (9,500 by default).
#   SEED [1]         pgbench --random-seed, for reproducible key choice (the timing and
#                    interleaving of clients still vary from run to run).
#   PORT [54329]     port number (only names the socket file .s.PGSQL.PORT).
#   QUICK [0]        QUICK=1: short test run (DURATION=10, RATE=50) to test this script.
#
# Server settings (written to postgresql.conf):
#   full_page_writes = off|on   the variable under study.
#   checkpoint_timeout = 30s    frequent timed checkpoints, so a 95 s run sees about 3
#                               checkpoints and (with fpw on) the FPI storm after each.
#   max_wal_size = 1GB          large enough that no checkpoint is triggered by WAL volume;
#                               only the 30 s timer starts checkpoints.
#   wal_keep_size = 4GB         keep every WAL segment since start_lsn: otherwise each
#                               checkpoint would recycle the segments pg_waldump needs.
#   wal_compression = off       full-page images appear uncompressed (only the hole is cut),
#                               so their tot length is the real image size.
#   autovacuum = off            no autovacuum/autoanalyze workers, so the trace holds only
#                               pgbench's own records (plus checkpoints and RUNNING_XACTS
#                               from the checkpointer/bgwriter), not vacuum/analyze records.
#   synchronous_commit = on     each commit waits for its WAL flush (the default), as a
#                               compute waiting for safekeeper acknowledgement would.
#   listen_addresses = ''       no TCP listener at all; Unix socket only.
#   unix_socket_directories     a socket directory inside the temp dir.
#   port = PORT                 non-default port.
#   (initdb defaults otherwise: wal_level=replica, 16 MB segments, 8 kB blocks, no data
#   checksums and wal_log_hints=off so hint-bit changes do not produce FPIs, shared_buffers
#   128MB which holds all of scale 1, checkpoint_completion_target=0.9.)
set -euo pipefail

OUTDIR=${1:-traces}
SCALE=${SCALE:-1}
CLIENTS=${CLIENTS:-4}
DURATION=${DURATION:-95}
RATE=${RATE:-100}
SEED=${SEED:-1}
PORT=${PORT:-54329}
QUICK=${QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
    DURATION=10
    RATE=50
fi
CHECKPOINT_TIMEOUT=30s
MAX_WAL_SIZE=1GB
PGUSER_OS=postgres

BINDIR=$(pg_config --bindir)
for b in initdb pg_ctl pgbench pg_waldump psql; do
    [[ -x "$BINDIR/$b" ]] || { echo "missing $BINDIR/$b" >&2; exit 2; }
done
if [[ ! -f "$(pg_config --sharedir)/extension/pageinspect.control" ]]; then
    echo "pageinspect extension missing (install postgresql-contrib)" >&2
    exit 2
fi

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

TMP=$(mktemp -d)
chown "$PGUSER_OS": "$TMP"
SOCK="$TMP/sock"
DATA=""            # data dir of the server currently running, if any

cleanup() {
    if [[ -n "$DATA" && -f "$DATA/postmaster.pid" ]]; then
        runuser -u "$PGUSER_OS" -- "$BINDIR/pg_ctl" -D "$DATA" -m immediate -w stop \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_pg() { runuser -u "$PGUSER_OS" -- "$@"; }
sql() { as_pg "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -d postgres -At "$@"; }

capture() {
    local fpw=$1
    local name="pgbench-fpw-$fpw"
    echo "== full_page_writes=$fpw" >&2

    DATA="$TMP/data-$fpw"
    as_pg mkdir -p "$SOCK"
    as_pg "$BINDIR/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C \
        --no-instructions >/dev/null
    cat >>"$DATA/postgresql.conf" <<EOF

# --- capture-pg-trace.sh ---
port = $PORT
listen_addresses = ''
unix_socket_directories = '$SOCK'
full_page_writes = $fpw
checkpoint_timeout = $CHECKPOINT_TIMEOUT
max_wal_size = $MAX_WAL_SIZE
wal_keep_size = 4GB
wal_compression = off
autovacuum = off
synchronous_commit = on
log_checkpoints = on
EOF
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$TMP/server-$fpw.log" -w start >/dev/null

    as_pg "$BINDIR/pgbench" -h "$SOCK" -p "$PORT" -i -s "$SCALE" -q postgres >&2
    sql -c "CREATE EXTENSION pageinspect"
    # Database-wide VACUUM: removes the dead catalog tuples left by initdb and pgbench -i,
    # so the page snapshot and pgbench's first queries do not emit catalog PRUNE records
    # (with their FPIs) inside the captured range. Then CHECKPOINT: the redo point that
    # makes the first change of every page after start_lsn carry an FPI (fpw on).
    sql -c "VACUUM"
    sql -c "CHECKPOINT"
    local version start_lsn
    version=$(sql -c "SHOW server_version")
    start_lsn=$(sql -c "SELECT pg_current_wal_insert_lsn()")

    # Page snapshot: pd_lower/pd_upper of every main-fork block of every pgbench relation.
    {
        printf 'spc\tdb\trelfilenode\trelname\tblk\tlower\tupper\n'
        sql -F $'\t' -c "
            WITH rels AS (
                SELECT c.oid AS rel, c.relname,
                       CASE WHEN c.reltablespace = 0
                            THEN (SELECT dattablespace FROM pg_database
                                  WHERE datname = current_database())
                            ELSE c.reltablespace END AS spc,
                       (SELECT oid FROM pg_database WHERE datname = current_database()) AS db,
                       pg_relation_filenode(c.oid) AS relfilenode
                FROM pg_class c
                WHERE c.relname IN ('pgbench_accounts', 'pgbench_branches',
                                    'pgbench_tellers', 'pgbench_history',
                                    'pgbench_accounts_pkey', 'pgbench_branches_pkey',
                                    'pgbench_tellers_pkey')
                  AND c.relnamespace = 'public'::regnamespace)
            SELECT r.spc, r.db, r.relfilenode, r.relname, blk, h.lower, h.upper
            FROM rels r,
                 generate_series(0, (pg_relation_size(r.rel) / 8192)::int - 1) AS blk,
                 page_header(get_raw_page(r.relname::text, blk)) AS h
            ORDER BY r.relname, blk"
    } >"$OUTDIR/$name.pages.tsv"
    local lsn_after_snapshot
    lsn_after_snapshot=$(sql -c "SELECT pg_current_wal_insert_lsn()")
    if [[ "$lsn_after_snapshot" != "$start_lsn" ]]; then
        echo "note: WAL advanced during page snapshot ($start_lsn -> $lsn_after_snapshot)" >&2
    fi

    local bench_out
    bench_out=$(as_pg "$BINDIR/pgbench" -h "$SOCK" -p "$PORT" -n -c "$CLIENTS" -j 1 \
        -T "$DURATION" -R "$RATE" --random-seed="$SEED" postgres)
    echo "$bench_out" >&2
    local end_lsn dump_end_lsn transactions wal_bytes start_seg end_seg
    end_lsn=$(sql -c "SELECT pg_current_wal_insert_lsn()")
    # Finish the spread checkpoint still in progress (started by the 30 s timer near the
    # end of the run) at once, plus one more, so their CHECKPOINT_ONLINE records (with
    # their redo points) are written; the dump runs up to dump_end_lsn to include them.
    sql -c "CHECKPOINT"
    dump_end_lsn=$(sql -c "SELECT pg_current_wal_insert_lsn()")
    # Names of the WAL segments holding start_lsn and dump_end_lsn. pg_waldump is given
    # them: without a segment name it takes the segment size from the header of whichever
    # file readdir() returns first, which may be a preallocated, still all-zero segment.
    start_seg=$(sql -c "SELECT pg_walfile_name('$start_lsn')")
    end_seg=$(sql -c "SELECT pg_walfile_name('$dump_end_lsn')")
    wal_bytes=$(sql -c "SELECT pg_wal_lsn_diff('$end_lsn', '$start_lsn')::bigint")
    transactions=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' \
        <<<"$bench_out")
    [[ -n "$transactions" ]] || { echo "cannot parse pgbench output" >&2; exit 1; }

    # Clean shutdown: writes every WAL record up to dump_end_lsn to pg_wal. The shutdown
    # checkpoint lies after dump_end_lsn and is not part of the trace.
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    DATA_STOPPED="$DATA"
    DATA=""

    local dump="$TMP/$name.waldump"
    as_pg "$BINDIR/pg_waldump" --path="$DATA_STOPPED/pg_wal" --start="$start_lsn" \
        --end="$dump_end_lsn" -b "$start_seg" "$end_seg" >"$dump"
    as_pg "$BINDIR/pg_waldump" --path="$DATA_STOPPED/pg_wal" --start="$start_lsn" \
        --end="$dump_end_lsn" --stats=record "$start_seg" "$end_seg" \
        >"$OUTDIR/$name.stats.txt"

    # [end_lsn, dump_end_lsn) must hold only XLOG/Standby records (checkpoints, running
    # xacts) and at least one CHECKPOINT_ONLINE; any Heap/Btree/Transaction/... record
    # there would be work outside the pgbench run. LSNs are compared as zero-padded
    # upper-case hex strings "HHHHHHHH/LLLLLLLL" (mawk has no hex arithmetic).
    local tail_check
    if ! tail_check=$(awk -v end="$end_lsn" '
        function norm(l,   p, h, o) {
            split(toupper(l), p, "/"); h = p[1]; o = p[2]
            while (length(h) < 8) h = "0" h
            while (length(o) < 8) o = "0" o
            return h "/" o
        }
        BEGIN { e = norm(end) }
        /^rmgr:/ {
            s = $0; sub(/.* lsn: */, "", s); sub(/,.*/, "", s)
            if (norm(s) < e) next
            n++
            if ($2 != "XLOG" && $2 != "Standby") { bad++; print "unexpected: " $0 > "/dev/stderr" }
            if ($0 ~ /CHECKPOINT_ONLINE/) ckpt++
        }
        END { printf "%d records, %d CHECKPOINT_ONLINE\n", n, ckpt; exit (bad > 0 || ckpt < 1) }
        ' "$dump"); then
        echo "error: [end_lsn $end_lsn, dump_end_lsn $dump_end_lsn) holds records other" \
            "than XLOG/Standby, or no CHECKPOINT_ONLINE ($tail_check)" >&2
        exit 1
    fi
    echo "[end_lsn, dump_end_lsn) = [$end_lsn, $dump_end_lsn): $tail_check" >&2

    local sums
    sums=$(awk '
        /^rmgr:/ {
            s = $0; sub(/.*len \(rec\/tot\): */, "", s)
            split(s, a, "/"); t = a[2]; sub(/,.*/, "", t)
            n++; rec += a[1]; tot += t
            if ($0 ~ /CHECKPOINT_ONLINE/) ckpt++
        }
        /\(FPW/ { fpi++ }
        END { printf "%d %d %d %d %d\n", n, rec, tot, ckpt, fpi }' "$dump")
    local records rec_bytes tot_bytes checkpoints fpis
    read -r records rec_bytes tot_bytes checkpoints fpis <<<"$sums"

    gzip -9 -c "$dump" >"$OUTDIR/$name.waldump.gz"
    rm -f "$dump"

    cat >"$OUTDIR/$name.capture.toml" <<EOF
# Written by scripts/capture-pg-trace.sh: pgbench (builtin tpcb-like, -n) on a fresh
# cluster; WAL range [start_lsn, dump_end_lsn) dumped in $name.waldump.gz. The pgbench
# work is [start_lsn, end_lsn); [end_lsn, dump_end_lsn) holds only checkpoint and
# running-xacts records (XLOG/Standby), from an explicit CHECKPOINT after pgbench.
postgres_version = "$version"
scale = $SCALE
clients = $CLIENTS
duration = $DURATION          # seconds (pgbench -T)
rate = $RATE              # transactions per second over all clients (pgbench -R)
random_seed = $SEED
checkpoint_timeout = "$CHECKPOINT_TIMEOUT"
max_wal_size = "$MAX_WAL_SIZE"
full_page_writes = $([[ $fpw == on ]] && echo true || echo false)
wal_compression = false
autovacuum = false
synchronous_commit = true
start_lsn = "$start_lsn"
end_lsn = "$end_lsn"        # insert LSN when pgbench finished: end of the pgbench work
dump_end_lsn = "$dump_end_lsn"   # insert LSN after the explicit CHECKPOINT that followed pgbench;
                                # the dump runs to here so the CHECKPOINT_ONLINE records (and
                                # redo points) of checkpoints still in progress at end_lsn are in it
wal_bytes = $wal_bytes         # end_lsn - start_lsn (pgbench work only), incl. page headers and padding
transactions = $transactions       # pgbench: number of transactions actually processed
records = $records             # WAL records in the dumped range [start_lsn, dump_end_lsn)
rec_bytes = $rec_bytes         # sum of "rec" lengths over the dumped range (records without block images)
tot_bytes = $tot_bytes         # sum of "tot" lengths over the dumped range (whole records, with images)
checkpoints = $checkpoints            # CHECKPOINT_ONLINE records in the dumped range
full_page_images = $fpis       # block references carrying an image ("(FPW)") in the dumped range
EOF
    grep -h 'checkpoint' "$TMP/server-$fpw.log" >&2 || true
}

capture off
capture on
ls -l "$OUTDIR"/pgbench-fpw-* >&2
