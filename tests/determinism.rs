//! The same seed gives the same trace hash: twice in one process, and in two processes.
//! Different seeds give different hashes.

use lakesim::config::Config;
use lakesim::plan::Plan;
use lakesim::runner::{run_seed, RunOptions};
use lakesim::scenario;

fn hash(seed: u64, config: &Config) -> u64 {
    let plan = Plan::generate(seed, config);
    let outcome = run_seed(seed, &plan, &RunOptions::default());
    assert!(
        outcome.violation.is_none(),
        "seed {seed}: {:?}",
        outcome.violation
    );
    outcome.trace_hash
}

#[test]
fn same_seed_same_hash_in_one_process() {
    let config = scenario::find("storm").unwrap();
    for seed in [1, 42, 1000] {
        assert_eq!(hash(seed, &config), hash(seed, &config), "seed {seed}");
    }
}

#[test]
fn different_seeds_different_hashes() {
    let config = scenario::find("storm").unwrap();
    let hashes: std::collections::BTreeSet<u64> = (0..8).map(|s| hash(s, &config)).collect();
    assert_eq!(hashes.len(), 8);
}

#[test]
fn plan_streams_are_independent() {
    // Changing the faults must not change the workload: each concern has its own stream.
    let calm = scenario::find("calm").unwrap();
    let storm = scenario::find("storm").unwrap();
    let (a, b) = (Plan::generate(7, &calm), Plan::generate(7, &storm));
    assert_eq!(a.workload, b.workload);
    assert_ne!(a.faults, b.faults);
}

/// Runs seed 42 of storm in a child process (this test binary, re-executed) and compares.
#[test]
fn same_seed_same_hash_in_two_processes() {
    const CHILD: &str = "LAKESIM_DETERMINISM_CHILD";
    let config = scenario::find("storm").unwrap();
    if std::env::var_os(CHILD).is_some() {
        println!("child-hash={:016x}", hash(42, &config));
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "same_seed_same_hash_in_two_processes",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let child = stdout
        .lines()
        .find_map(|l| l.strip_prefix("child-hash="))
        .unwrap_or_else(|| panic!("child printed no hash: {stdout}"));
    assert_eq!(child, format!("{:016x}", hash(42, &config)));
}

/// The self-check campaigns run (`--check-determinism`): a seed run twice in one process with
/// state that leaks between runs (the planted `process-global-counter`) is caught as
/// `nondeterminism`, naming where the traces part; the same seed without it is not.
#[test]
fn the_self_check_catches_state_shared_between_runs() {
    use lakesim::determinism::run_twice;
    use lakesim_nodes::bugs::{Bug, BugSet};
    let config = lakesim::scenario::find("calm").unwrap();
    let plan = lakesim::plan::Plan::generate(5, &config);
    let clean = run_twice(5, &plan, &lakesim::runner::RunOptions::default());
    assert!(clean.violation.is_none(), "{:?}", clean.violation);
    let leaky = lakesim::runner::RunOptions {
        bugs: BugSet::of([Bug::ProcessGlobalCounter]),
        ..Default::default()
    };
    let v = run_twice(5, &plan, &leaky).violation.expect("caught");
    assert_eq!(v.invariant, lakesim_nodes::Invariant::Nondeterminism);
    assert!(v.detail.contains("they part at event"), "{}", v.detail);
}
