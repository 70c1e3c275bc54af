//! Shrinking a failing run to a plan a person can read: delta debugging (Zeller's ddmin) over
//! the fault schedule, then a binary search over the workload's length (and, when that
//! shortened it, ddmin again), keeping only what still fails with the same invariant caught by
//! the same check. The result is 1-minimal: removing any one remaining event loses the failure.
//!
//! Guarantees: the shrunk plan is built exactly as a replay builds it (the seed's plan with the
//! file's schedule and workload length, see [`crate::seedfile::FaultRecord::apply`]), so the
//! file it writes replays bit-exactly with the trace hash it pins; the schedule's final heal is
//! kept (it ends the fault window the liveness checks measure from); candidates run `jobs` at a
//! time, and the first that fails in candidate order wins, so the result does not depend on
//! which thread finishes first. Every run has a wall-clock budget, so a candidate that runs
//! away counts as not failing.

use crate::budget::Limits;
use crate::plan::{FaultAction, FaultEvent, Plan};
use crate::runner::{run_seed, RunOptions, RunOutcome};
use crate::seedfile::{same_catcher, FaultRecord, Loaded, SeedFile};
use anyhow::{bail, Result};
use lakesim_nodes::Invariant;
use std::time::{Duration, Instant};

/// What a candidate must still do.
struct Target {
    invariant: Invariant,
    caught_by: String,
}

impl Target {
    fn matches(&self, v: &crate::checker::Violation) -> bool {
        v.invariant == self.invariant && same_catcher(&v.caught_by, &self.caught_by)
    }
}

/// The result of a shrink.
pub struct Shrunk {
    pub file: SeedFile,
    pub events_before: Vec<FaultEvent>,
    pub events_after: Vec<FaultEvent>,
    pub items_before: u64,
    pub items_after: u64,
    pub runs: u64,
    pub wall: Duration,
}

struct Shrinker<'a> {
    loaded: &'a Loaded,
    target: Target,
    jobs: usize,
    limits: Limits,
    runs: u64,
    progress: &'a dyn Fn(&str),
}

/// Shrinks the failure `loaded` records; `progress` hears of each step.
pub fn shrink(loaded: &Loaded, jobs: usize, progress: &dyn Fn(&str)) -> Result<Shrunk> {
    let started = Instant::now();
    if loaded.file.invariant == Some(Invariant::Nondeterminism) {
        bail!("a nondeterminism failure shows only between two runs of a seed; shrink works on a failure one run shows");
    }
    let first = run(loaded, &loaded.plan, &Limits::default());
    let Some(v) = &first.violation else {
        bail!(
            "seed {} passes: only a failing run can be shrunk",
            loaded.file.seed
        );
    };
    if v.invariant == Invariant::Budget {
        bail!("a budget failure depends on the machine's speed and memory: it cannot be shrunk");
    }
    let mut s = Shrinker {
        loaded,
        target: Target {
            invariant: v.invariant,
            caught_by: v.caught_by.clone(),
        },
        jobs: jobs.max(1),
        // Ten times the original run, and at least ten seconds.
        limits: Limits {
            wall: Some((first.wall_time * 10).max(Duration::from_secs(10))),
            ..Limits::default()
        },
        runs: 1,
        progress,
    };
    progress(&format!(
        "fails with {} caught by {} in {:.2}s; shrinking {} fault events, then {} work items",
        v.invariant,
        v.caught_by,
        first.wall_time.as_secs_f64(),
        movable(&loaded.plan.faults).len(),
        first.work_items
    ));
    let events_before = loaded.plan.faults.clone();
    let plan = s.shrink_events(loaded.plan.clone());
    let plan = s.shrink_workload(plan, first.work_items);
    // A shorter workload moves everything after it: events needed before may not be now.
    let plan = match plan.work_items {
        Some(_) => s.shrink_events(plan),
        None => plan,
    };
    let last = run(loaded, &plan, &Limits::default());
    s.runs += 1;
    let lv = last
        .violation
        .as_ref()
        .filter(|lv| s.matches(lv))
        .expect("the shrunk plan fails as the original did: every step kept that");
    let file = SeedFile {
        caught_by: Some(lv.caught_by.clone()),
        detail: Some(lv.detail.clone()),
        trace_hash: format!("{:016x}", last.trace_hash),
        plan: Some(FaultRecord::of(&plan)),
        ..loaded.file.clone()
    };
    Ok(Shrunk {
        file,
        events_before,
        events_after: plan.faults.clone(),
        items_before: first.work_items,
        items_after: plan.work_items.unwrap_or(first.work_items),
        runs: s.runs,
        wall: started.elapsed(),
    })
}

/// The events ddmin may remove: all but the heal that ends the fault window.
fn movable(faults: &[FaultEvent]) -> Vec<FaultEvent> {
    faults
        .iter()
        .filter(|e| e.action != FaultAction::HealAll)
        .cloned()
        .collect()
}

/// One run of `plan` with the file's bugs.
fn run(loaded: &Loaded, plan: &Plan, limits: &Limits) -> RunOutcome {
    let opts = RunOptions {
        bugs: loaded.bugs.clone(),
        keep_trace: false,
        limits: limits.clone(),
    };
    run_seed(loaded.file.seed, plan, &opts)
}

impl Shrinker<'_> {
    fn matches(&self, v: &crate::checker::Violation) -> bool {
        self.target.matches(v)
    }

    /// `plan` with `events` (plus the heals) as its schedule, built as a replay builds it.
    fn with_events(&self, plan: &Plan, events: &[FaultEvent]) -> Plan {
        let mut faults: Vec<FaultEvent> = events.to_vec();
        faults.extend(
            plan.faults
                .iter()
                .filter(|e| e.action == FaultAction::HealAll)
                .cloned(),
        );
        faults.sort_by_key(|e| e.at_ms);
        let record = FaultRecord {
            faults,
            ..FaultRecord::of(plan)
        };
        record
            .apply(plan.clone())
            .expect("a subset of a valid schedule is valid")
    }

    /// The index of the first candidate that still fails as the target does, running them
    /// `jobs` at a time.
    fn first_failing(&mut self, candidates: &[Plan]) -> Option<usize> {
        let (loaded, target, limits) = (self.loaded, &self.target, &self.limits);
        for (batch_no, batch) in candidates.chunks(self.jobs).enumerate() {
            let fails: Vec<bool> = std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|plan| {
                        scope.spawn(move || {
                            let o = run(loaded, plan, limits);
                            o.violation.as_ref().is_some_and(|v| target.matches(v))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(false))
                    .collect()
            });
            self.runs += batch.len() as u64;
            if let Some(i) = fails.iter().position(|f| *f) {
                return Some(batch_no * self.jobs + i);
            }
        }
        None
    }

    /// ddmin: try each of `n` chunks alone, then each complement; on success keep it and go
    /// on at a coarser split, otherwise split finer, until single events.
    fn shrink_events(&mut self, plan: Plan) -> Plan {
        let mut events = movable(&plan.faults);
        let mut n = 2usize;
        while events.len() >= 2 {
            let chunks = split(&events, n);
            let mut candidates: Vec<Vec<FaultEvent>> = chunks.clone();
            if n > 2 {
                candidates.extend((0..chunks.len()).map(|i| complement(&chunks, i)));
            }
            let plans: Vec<Plan> = candidates
                .iter()
                .map(|c| self.with_events(&plan, c))
                .collect();
            match self.first_failing(&plans) {
                Some(i) => {
                    let was = events.len();
                    events = candidates.swap_remove(i);
                    n = if i < chunks.len() { 2 } else { (n - 1).max(2) };
                    (self.progress)(&format!(
                        "{} runs: {was} -> {} fault events",
                        self.runs,
                        events.len()
                    ));
                }
                None if n >= events.len() => break,
                None => n = (n * 2).min(events.len()),
            }
        }
        if events.len() == 1 {
            // The last one may go too.
            let none = self.with_events(&plan, &[]);
            if self.first_failing(std::slice::from_ref(&none)).is_some() {
                events.clear();
                (self.progress)(&format!("{} runs: 1 -> 0 fault events", self.runs));
            }
        }
        self.with_events(&plan, &events)
    }

    /// Binary search for the fewest work items (up to the `taken` the failing run used) with
    /// which the run still fails.
    fn shrink_workload(&mut self, plan: Plan, taken: u64) -> Plan {
        let (mut lo, mut hi) = (0u64, taken.max(1));
        let mut best = None;
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            let candidate = Plan {
                work_items: Some(mid),
                ..plan.clone()
            };
            if self
                .first_failing(std::slice::from_ref(&candidate))
                .is_some()
            {
                hi = mid;
                best = Some(candidate);
            } else {
                lo = mid;
            }
        }
        match best {
            Some(p) => {
                (self.progress)(&format!("{} runs: {taken} -> {hi} work items", self.runs));
                p
            }
            None => plan,
        }
    }
}

/// `events` in `n` nearly equal chunks, in order.
fn split(events: &[FaultEvent], n: usize) -> Vec<Vec<FaultEvent>> {
    let n = n.min(events.len()).max(1);
    let size = events.len().div_ceil(n);
    events.chunks(size).map(<[FaultEvent]>::to_vec).collect()
}

/// Every chunk but the `i`-th, in order.
fn complement(chunks: &[Vec<FaultEvent>], i: usize) -> Vec<FaultEvent> {
    chunks
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .flat_map(|(_, c)| c.iter().cloned())
        .collect()
}

/// One line per event, for people.
pub fn describe_events(events: &[FaultEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{:>6} ms  {:?}", e.at_ms, e.action))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at_ms: u64) -> FaultEvent {
        FaultEvent {
            at_ms,
            action: FaultAction::Crash { node: 1 },
        }
    }

    #[test]
    fn chunks_and_complements_cover_the_events_in_order() {
        let events: Vec<_> = (0..7).map(ev).collect();
        let chunks = split(&events, 3);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), events);
        let rest = complement(&chunks, 1);
        assert_eq!(rest.len(), events.len() - chunks[1].len());
        assert!(rest.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    }
}
