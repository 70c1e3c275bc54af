//! Safekeepers remove WAL once every pageserver holds it in the object store: their disks stay
//! bounded, and a compute elected after the removal starts from a pageserver's basebackup.

use lakesim::plan::Plan;
use lakesim::runner::{run_seed, RunOptions};
use lakesim::scenario;

fn run(seed: u64, name: &str) -> lakesim::runner::RunOutcome {
    let config = scenario::find(name).expect("scenario");
    let plan = Plan::generate(seed, &config);
    let outcome = run_seed(seed, &plan, &RunOptions::default());
    assert!(
        outcome.violation.is_none(),
        "seed {seed} of {name} failed: {:?}",
        outcome.violation
    );
    outcome
}

#[test]
fn safekeeper_disks_stay_bounded() {
    let stats = run(1, "calm").stats;
    assert!(stats.segments_removed > 0, "no WAL segment was removed");
    assert!(
        stats.safekeeper_wal_held * 3 < stats.committed_bytes,
        "a safekeeper still holds {} bytes of {} committed",
        stats.safekeeper_wal_held,
        stats.committed_bytes
    );
}

#[test]
fn computes_start_from_a_basebackup_once_the_wal_is_gone() {
    let started_from_backup = (1..=4)
        .map(|seed| run(seed, "storm").stats.basebackups)
        .sum::<u64>();
    assert!(
        started_from_backup > 0,
        "no compute started from a basebackup in 4 storm seeds"
    );
}
