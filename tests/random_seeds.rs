//! A batch of random seeds per scenario. `LAKESIM_SEEDS=N` sets the batch size, `LAKESIM_SEED=S`
//! runs that one seed, `LAKESIM_SEED_BASE=B` fixes the batch (for runs that must compare, such
//! as mutation testing). A failing seed prints the command that replays it.

use lakesim::plan::Plan;
use lakesim::runner::{run_seed, RunOptions};
use lakesim::scenario;

const DEFAULT_BATCH: u64 = 8;

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("LAKESIM_SEED") {
        return vec![s.parse().expect("LAKESIM_SEED must be a u64")];
    }
    let n = std::env::var("LAKESIM_SEEDS").map_or(DEFAULT_BATCH, |s| {
        s.parse().expect("LAKESIM_SEEDS must be a number")
    });
    // Fresh seeds each run (this is outside the simulation): the batch explores, and a failure
    // prints its seed.
    let base = match std::env::var("LAKESIM_SEED_BASE") {
        Ok(b) => b.parse().expect("LAKESIM_SEED_BASE must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    (0..n)
        .map(|i| {
            base.wrapping_mul(6364136223846793005)
                .wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        })
        .collect()
}

#[test]
fn random_seeds_hold_every_invariant_in_every_scenario() {
    let mut failures = Vec::new();
    for s in scenario::ALL {
        let config = (s.build)();
        for seed in seeds() {
            let plan = Plan::generate(seed, &config);
            let outcome = run_seed(seed, &plan, &RunOptions::default());
            if let Some(v) = outcome.violation {
                failures.push(format!(
                    "{} seed {seed}: {} violated: {}\n  replay: lakesim run --seed {seed} --scenario {}",
                    s.name, v.invariant, v.detail, s.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
