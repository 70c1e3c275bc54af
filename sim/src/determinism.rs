//! The determinism self-check: a seed run twice in one process must do the same things in the
//! same order at the same simulated times (the same trace hash). Everything lakesim promises
//! (replays, pinned corpora, shrinking) rests on it, so a campaign can spend a share of its
//! seeds re-checking it (`--check-determinism P`).
//!
//! Which seeds are re-checked follows from the seed alone, so a sharded or resumed campaign
//! checks the same ones. A mismatch is a failure of its own kind, `nondeterminism`, that names
//! both hashes and the first event where the two traces part.

use crate::checker::Violation;
use crate::plan::Plan;
use crate::runner::{run_seed, RunOptions, RunOutcome};
use lakesim_faults::Event;
use lakesim_nodes::Invariant;

/// What catches a mismatch, as failure files record it.
pub const CAUGHT_BY: &str = "determinism self-check";

/// True when `seed` is one of the `percent` in a hundred a campaign re-checks.
pub fn chosen(seed: u64, percent: u8) -> bool {
    // splitmix64: consecutive seeds spread evenly over the hundred.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z % 100 < u64::from(percent)
}

/// Runs `seed` twice, keeping both traces; the first outcome, with a `nondeterminism`
/// violation in place of any other when the two runs differ.
pub fn run_twice(seed: u64, plan: &Plan, opts: &RunOptions) -> RunOutcome {
    let opts = RunOptions {
        keep_trace: true,
        ..opts.clone()
    };
    let first = run_seed(seed, plan, &opts);
    if first.interrupted {
        return first;
    }
    let second = run_seed(seed, plan, &opts);
    if second.interrupted {
        return RunOutcome {
            interrupted: true,
            ..first
        };
    }
    match compare(&first, &second) {
        Some(v) => RunOutcome {
            violation: Some(v),
            full_trace: None,
            ..first
        },
        None => RunOutcome {
            full_trace: None,
            ..first
        },
    }
}

/// The violation two runs of one seed make when they differ.
pub fn compare(a: &RunOutcome, b: &RunOutcome) -> Option<Violation> {
    if a.trace_hash == b.trace_hash {
        return None;
    }
    let empty = Vec::new();
    let (ta, tb) = (
        a.full_trace.as_ref().unwrap_or(&empty),
        b.full_trace.as_ref().unwrap_or(&empty),
    );
    let parting = first_difference(ta, tb).map_or_else(
        || "the traces were not kept".to_string(),
        |(i, ea, eb)| {
            let show = |e: Option<&Event>| {
                e.map_or("the end of the trace".into(), |e| {
                    format!("`{} ns n{} {} {} {}`", e.time_ns, e.node, e.kind, e.a, e.b)
                })
            };
            format!(
                "they part at event {i}: {} in the first run, {} in the second",
                show(ea),
                show(eb)
            )
        },
    );
    Some(Violation {
        invariant: Invariant::Nondeterminism,
        caught_by: CAUGHT_BY.to_string(),
        time_ms: 0,
        nodes: vec![],
        detail: format!(
            "two runs of seed {} in one process gave trace hashes {:016x} and {:016x}; {parting}",
            a.seed, a.trace_hash, b.trace_hash
        ),
    })
}

/// The index of the first event where two traces differ, and the two events there.
pub fn first_difference<'a>(
    a: &'a [Event],
    b: &'a [Event],
) -> Option<(usize, Option<&'a Event>, Option<&'a Event>)> {
    let i = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    (i < a.len().max(b.len())).then(|| (i, a.get(i), b.get(i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_seeds_is_chosen() {
        let n = (0..10_000).filter(|s| chosen(*s, 10)).count();
        assert!((800..1200).contains(&n), "{n}");
        assert!((0..1000).all(|s| !chosen(s, 0)) && (0..1000).all(|s| chosen(s, 100)));
    }

    #[test]
    fn traces_part_at_their_first_difference() {
        let e = |kind| Event {
            time_ns: 1,
            node: 1,
            kind,
            a: 0,
            b: 0,
        };
        let (a, b) = (vec![e("x"), e("y")], vec![e("x"), e("z"), e("w")]);
        let (i, ea, eb) = first_difference(&a, &b).unwrap();
        assert_eq!((i, ea.unwrap().kind, eb.unwrap().kind), (1, "y", "z"));
        assert!(first_difference(&a, &a).is_none());
    }
}
