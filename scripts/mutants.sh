#!/usr/bin/env bash
# Mutation testing of nodes/ as a habit: cargo-mutants (from crates.io) makes a round-robin
# sample of the mutants of nodes/src, tests each with a fast command (the random-seed test on a
# fixed batch, LAKESIM_SEEDS seeds of every scenario, default 15; the seed corpus; the short
# cost-model experiments; the unit tests), and this script writes the score and the survivors. A surviving mutant is a
# missing check, unless scripts/mutants-equivalent.txt names it (one mutant per line, as
# cargo-mutants prints it, then " # why it is equivalent").
#
# Usage: scripts/mutants.sh [SHARD [SHARDS]]   (default: shard 0 of 10, one mutant in ten)
# Environment:
#   MUTANTS_OUT   output directory (default mutants-out/)
#   MUTANTS_JOBS  mutants tested at once, each in its own scratch copy of the tree (default 1;
#                 on 2 cores use 2: the test runs on one core)
#   LAKESIM_SEEDS, LAKESIM_SEED_BASE  the random-seed batch (default 15 seeds, base 1)
#   MUTANTS_ITERATE=1  re-test only the mutants not caught in the previous run in MUTANTS_OUT
#                 (matched by name, which includes the line: after edits, use MUTANTS_RE)
#   MUTANTS_RE    a file of regexes (one per line) naming the mutants to test, for re-testing
#                 the survivors of a run after a change; use with SHARD 0, SHARDS 1
# Output: MUTANTS_OUT/job-J/mutants.out (cargo-mutants' own files), score.txt, survivors.txt.
#
# Each mutant costs one incremental build in the `mutants` profile (release, incremental, no
# debug info: seconds after a one-line change) and one test run (about 30 s on one core).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shard=${1:-0}
shards=${2:-10}
out=$(realpath -m "${MUTANTS_OUT:-mutants-out}")
jobs=${MUTANTS_JOBS:-1}
if ! [[ $shard =~ ^[0-9]+$ && $shards =~ ^[0-9]+$ && $jobs =~ ^[0-9]+$ ]] \
  || ((shards < 1 || shard >= shards || jobs < 1)); then
  echo "usage: scripts/mutants.sh [SHARD [SHARDS]] with 0 <= SHARD < SHARDS; MUTANTS_JOBS >= 1" >&2
  exit 2
fi
if ! command -v cargo-mutants >/dev/null 2>&1; then
  cargo install cargo-mutants --locked
fi
export LAKESIM_SEEDS=${LAKESIM_SEEDS:-15}
export LAKESIM_SEED_BASE=${LAKESIM_SEED_BASE:-1}
mkdir -p "$out"

# cargo-mutants' baseline tests only the mutated package (nodes/, which lacks the random-seed
# test), so it is skipped: run `cargo test` first; the timeouts are set instead (a mutant that
# livelocks a seed's simulated time times out, and counts as killed).
# Job J tests round-robin shard SHARD + J*SHARDS of SHARDS*JOBS: together, exactly shard SHARD
# of SHARDS. Each job mutates its own scratch copy of the tree in place, so this tree is never
# touched and each keeps its own incremental build.
run_job() {
  local j=$1 tree="$out/tree-$j"
  mkdir -p "$tree"
  tar -C "$root" --exclude=./target --exclude=./mutants-out --exclude=./.git -cf - . \
    | tar -C "$tree" -xf -
  local iterate=()
  [[ ${MUTANTS_ITERATE:-0} == 1 ]] && iterate=(--iterate)
  if [[ -n ${MUTANTS_RE:-} ]]; then
    while IFS= read -r re; do
      [[ -n $re ]] && iterate+=(--re "$re")
    done <"$MUTANTS_RE"
  fi
  (cd "$tree" && cargo mutants --workspace --file 'nodes/**' \
    --shard "$((shard + j * shards))/$((shards * jobs))" --sharding round-robin \
    --test-workspace=true --baseline=skip --timeout 300 --build-timeout 1200 \
    --profile mutants --in-place --no-shuffle "${iterate[@]}" --output "$out/job-$j" \
    -- --test random_seeds --test seeds_corpus --test experiments --lib) >"$out/job-$j.log" 2>&1 || true
}
for ((j = 0; j < jobs; j++)); do
  run_job "$j" &
done
wait

# Merge the jobs' outcomes.
: >"$out/caught.txt"; : >"$out/missed.txt"; : >"$out/timeout.txt"; : >"$out/unviable.txt"
for ((j = 0; j < jobs; j++)); do
  dir="$out/job-$j/mutants.out"
  if [[ ! -f $dir/outcomes.json ]]; then
    echo "job $j did not finish: see $out/job-$j.log" >&2
    exit 1
  fi
  for f in caught missed timeout unviable; do
    [[ -f $dir/$f.txt ]] && cat "$dir/$f.txt" >>"$out/$f.txt"
  done
done
count() { grep -c . "$out/$1" || true; }
equivalent=0
: >"$out/survivors.txt"
while IFS= read -r m; do
  if grep -qF -- "$m #" scripts/mutants-equivalent.txt 2>/dev/null; then
    equivalent=$((equivalent + 1))
  else
    echo "$m" >>"$out/survivors.txt"
  fi
done <"$out/missed.txt"
caught=$(count caught.txt)
timeouts=$(count timeout.txt)
missed=$(count survivors.txt)
killed=$((caught + timeouts))
total=$((killed + missed))
score=$((total > 0 ? 100 * killed / total : 0))
{
  echo "shard $shard/$shards ($jobs jobs, $LAKESIM_SEEDS seeds per scenario from base $LAKESIM_SEED_BASE):"
  echo "  $killed killed ($caught caught, $timeouts timed out), $missed survived, $equivalent equivalent (listed), $(count unviable.txt) unviable"
  echo "score: $score% of the $total viable mutants not listed as equivalent"
  echo "survivors (each a missing check): $out/survivors.txt"
} | tee "$out/score.txt"
