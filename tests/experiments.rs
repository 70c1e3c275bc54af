//! The cost half: short runs with the cost model on that pin what the experiments rest on.
//! Each is a few simulated seconds; the full sweeps are `lakesim experiment NAME`.

use lakesim::checker::Stats;
use lakesim::config::{Config, ImagePolicy, WorkloadKind};
use lakesim::experiment::base_config;
use lakesim::pgtrace::{import, read_maybe_gz, Trace};
use lakesim::plan::Plan;
use lakesim::runner::{run_seed, RunOptions};
use lakesim::tpcb::Layout;
use std::path::Path;

fn run(config: &Config, seed: u64) -> Stats {
    config.validate().expect("a valid config");
    let plan = Plan::generate(seed, config);
    let outcome = run_seed(seed, &plan, &RunOptions::default());
    assert!(
        outcome.violation.is_none(),
        "seed {seed}: {:?}",
        outcome.violation
    );
    outcome.stats
}

fn tpcb(fpw: bool) -> Config {
    let mut c = base_config(None);
    c.full_page_writes = fpw;
    c.cost.vcpus = 2;
    c.checkpoint_timeout_ms = 10;
    c.fault_window_ms = 1000;
    c
}

#[test]
fn full_page_writes_multiply_tpcb_wal_when_pages_are_touched_once_per_checkpoint() {
    let (on, off) = (run(&tpcb(true), 1).metrics, run(&tpcb(false), 1).metrics);
    assert!(
        off.txns > 1000 && on.txns > 1000,
        "{} and {} transactions",
        on.txns,
        off.txns
    );
    // Postgres's own pgbench WAL is 430 bytes of records per transaction.
    assert!(
        (380.0..480.0).contains(&off.wal_bytes_per_txn),
        "FPW off: {}",
        off.wal_bytes_per_txn
    );
    let ratio = on.wal_bytes_per_txn / off.wal_bytes_per_txn;
    assert!(ratio > 10.0, "FPW on/off WAL ratio {ratio}");
    assert!(on.fpi_share > 0.9, "FPI share {}", on.fpi_share);
}

#[test]
fn per_page_records_bounds_the_hot_page_chain_and_no_images_do_not() {
    let hot = Layout::new(1).first_branch_page();
    let max_hot_chain = |policy: ImagePolicy| {
        let mut c = base_config(None);
        c.image_policy = policy;
        c.cost.vcpus = 2;
        c.workload.clients = 64;
        c.workload.hot_read_page = Some(hot);
        c.workload.hot_read_share = 0.5;
        c.workload.read_interval_ms = 2;
        run(&c, 2)
            .served
            .iter()
            .filter(|s| s.page == hot)
            .map(|s| s.records)
            .max()
    };
    let bounded = max_hot_chain(ImagePolicy::PerPageRecords(8)).expect("hot reads");
    let unbounded = max_hot_chain(ImagePolicy::None).expect("hot reads");
    // Images are made after each chunk ingest takes: a read applies at most 8 records plus
    // the hot page's records in that chunk (about 7,000 updates a second of it, chunks every
    // 10-20 ms).
    assert!(
        bounded <= 8 + 200,
        "per-page-records:8 let a read apply {bounded} records"
    );
    assert!(
        unbounded >= 10 * bounded,
        "with no images the hot chain reached {unbounded}, with per-page-records:8 {bounded}"
    );
}

#[test]
fn import_wal_reproduces_the_shipped_traces() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    for name in ["pgbench-fpw-off", "pgbench-fpw-on"] {
        let dump = read_maybe_gz(&root.join(format!("{name}.waldump.gz"))).unwrap();
        let pages = read_maybe_gz(&root.join(format!("{name}.pages.tsv"))).unwrap();
        let (text, _) = import(&dump, Some(&pages), &format!("{name}.waldump.gz")).unwrap();
        let shipped = std::fs::read_to_string(root.join(format!("{name}.trace"))).unwrap();
        assert!(
            text == shipped,
            "import-wal of {name}.waldump.gz differs from {name}.trace"
        );
    }
}

#[test]
fn replayed_postgres_wal_matches_what_postgres_wrote() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    for (name, fpw, tolerance) in [
        ("pgbench-fpw-off", false, 0.10),
        ("pgbench-fpw-on", true, 0.20),
    ] {
        let path = root.join(format!("{name}.trace"));
        let trace = Trace::load(&path).unwrap();
        let txns = trace.header_number("transactions").unwrap();
        let key = if fpw { "tot_bytes" } else { "rec_bytes" };
        let captured = trace.header_number(key).unwrap() / txns;
        let mut c = base_config(None);
        c.workload.kind = WorkloadKind::PgTrace;
        c.workload.trace = Some(path);
        c.cost.vcpus = 8;
        c.full_page_writes = fpw;
        c.fault_window_ms = 400;
        c.liveness_window_ms = 1500;
        let m = run(&c, 1).metrics;
        assert!(
            m.txns as f64 >= txns - 1.0,
            "{name}: replayed {} of {txns} transactions",
            m.txns
        );
        let diff = m.wal_bytes_per_txn / captured - 1.0;
        assert!(
            diff.abs() < tolerance,
            "{name}: lakesim {} bytes/txn, Postgres {captured}",
            m.wal_bytes_per_txn
        );
    }
}
