#!/usr/bin/env bash
# Mutation testing of nodes/ as a habit: cargo-mutants (from crates.io) makes a round-robin
# sample of the mutants of nodes/src, tests each with a fast command (the random-seed test,
# LAKESIM_SEEDS seeds of every scenario, default 25), and this script writes the score and the
# survivors. A surviving mutant is a missing check, unless scripts/mutants-equivalent.txt names
# it (one mutant per line, as cargo-mutants prints it, then " # why it is equivalent").
#
# Usage: scripts/mutants.sh [SHARD [SHARDS]]   (default: shard 0 of 10, one mutant in ten)
# Output: $MUTANTS_OUT (default mutants-out/): cargo-mutants' own files, and score.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
shard=${1:-0}
shards=${2:-10}
out=${MUTANTS_OUT:-mutants-out}
if ! command -v cargo-mutants >/dev/null 2>&1; then
  cargo install cargo-mutants --locked
fi
export LAKESIM_SEEDS=${LAKESIM_SEEDS:-25}
mkdir -p "$out"
# Exit status 2 means some mutants survived: the score below says how many matter.
cargo mutants --package lakesim-nodes --shard "$shard/$shards" --sharding round-robin \
  --test-workspace=true --output "$out" --no-shuffle \
  -- --test random_seeds --test seeds_corpus --lib || true
dir="$out/mutants.out"
count() { [[ -f "$dir/$1" ]] && grep -c . "$dir/$1" || echo 0; }
caught=$(count caught.txt)
missed_all=$(count missed.txt)
timeouts=$(count timeout.txt)
equivalent=0
: >"$out/survivors.txt"
if [[ -f "$dir/missed.txt" ]]; then
  while IFS= read -r m; do
    if grep -qF -- "$m" scripts/mutants-equivalent.txt 2>/dev/null; then
      equivalent=$((equivalent + 1))
    else
      echo "$m" >>"$out/survivors.txt"
    fi
  done <"$dir/missed.txt"
fi
missed=$((missed_all - equivalent))
killed=$((caught + timeouts))
total=$((killed + missed))
score=$(( total > 0 ? 100 * killed / total : 0 ))
{
  echo "shard $shard/$shards: $killed killed ($caught caught, $timeouts timed out), $missed survived, $equivalent equivalent (listed), $(count unviable.txt) unviable"
  echo "score: $score% of the mutants not listed as equivalent"
  echo "survivors (each a missing check): $out/survivors.txt"
} | tee "$out/score.txt"
