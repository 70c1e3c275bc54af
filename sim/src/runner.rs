//! Runs one seed: plan -> cluster under a fresh madsim runtime -> checkers -> outcome.
//!
//! Each run gets its own OS thread (std's `HashMap` seeds are per thread, and madsim's runtime
//! must not be shared), and a panic anywhere in it, node or harness, is caught and becomes a
//! violation (the invariant a node assertion names, or `panic`) rather than taking the process
//! down.

use crate::budget::{Cut, Limits, Watch};
use crate::checker::client::ClientLog;
use crate::checker::{Checker, EndOfRun, Sources, Stats, Violation, LIVENESS_BOUND};
use crate::cluster::{make_disks, shutdown, Cluster, NodeRegistry, World};
use crate::config::Config;
use crate::plan::Plan;
use lakesim_faults::{Event, Trace};
use lakesim_nodes::bugs::BugSet;
use lakesim_nodes::invariant::{Broken, Invariant};
use lakesim_nodes::probe::ProbeSet;
use lakesim_nodes::NodeId;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the harness looks for a violation to stop early.
const CHECK_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub bugs: BugSet,
    /// Keep every event (for `--trace`).
    pub keep_trace: bool,
    /// Wall time, memory and a stop flag (campaigns); none by default.
    pub limits: Limits,
}

/// What one seed did.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub seed: u64,
    pub trace_hash: u64,
    pub events: u64,
    pub sim_time: Duration,
    pub wall_time: Duration,
    pub violation: Option<Violation>,
    pub recent: Vec<Event>,
    pub full_trace: Option<Vec<Event>>,
    pub stats: Stats,
    /// The campaign stopped while this seed ran: it did not finish, and says nothing.
    pub interrupted: bool,
    /// The most memory the seed's thread held at once.
    pub peak_memory_bytes: u64,
    /// Work items the client handed to the compute.
    pub work_items: u64,
    /// The coverage probes the run reached.
    pub probes: ProbeSet,
}

/// Runs `seed` with `plan` (which holds the configuration it runs with) on a fresh thread and
/// waits for it.
pub fn run_seed(seed: u64, plan: &Plan, opts: &RunOptions) -> RunOutcome {
    try_run_seed(seed, plan, opts).expect("spawn a run thread")
}

/// [`run_seed`], with the error when no thread can be started for the seed. A seed that does
/// not stop by itself (no events, so its budget is never looked at) is left behind, reported
/// as cut, [`ABANDON_AFTER`] past its wall budget or past a stop request.
pub fn try_run_seed(seed: u64, plan: &Plan, opts: &RunOptions) -> std::io::Result<RunOutcome> {
    let watch = (!opts.limits.is_none()).then(|| Watch::new(&opts.limits));
    let (plan, run_opts, run_watch) = (plan.clone(), opts.clone(), watch.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .spawn(move || {
            let _ = tx.send(run_on_this_thread(seed, &plan, &run_opts, run_watch));
        })?;
    let Some(watch) = watch else {
        let outcome = rx.recv().expect("the run thread catches its panics");
        let _ = thread.join();
        return Ok(outcome);
    };
    // The watchdog: real time is read here, outside the simulation.
    let started = Instant::now();
    let mut cut_asked: Option<(Instant, Cut)> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(outcome) => {
                let _ = thread.join();
                return Ok(outcome);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the run thread of seed {seed} ended without an outcome")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        let stopping = opts
            .limits
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed));
        let over = opts.limits.wall.filter(|w| started.elapsed() > *w);
        if cut_asked.is_none() {
            if stopping {
                cut_asked = Some((Instant::now(), Cut::Interrupted));
            } else if let Some(limit) = over {
                watch.time_up();
                cut_asked = Some((Instant::now(), Cut::WallTime { limit }));
            }
        }
        if let Some((at, cut)) = &cut_asked {
            if at.elapsed() > ABANDON_AFTER {
                // The seed records no events, so it never looks at its watch: it is left
                // running, detached, and ends with the process.
                return Ok(cut_outcome(
                    seed,
                    cut,
                    None,
                    None,
                    Duration::ZERO,
                    started.elapsed(),
                ));
            }
        }
    }
}

/// How long a seed that does not stop by itself is waited for past its budget or a stop.
pub const ABANDON_AFTER: Duration = Duration::from_secs(5);

/// The outcome of a seed cut short: interrupted (no verdict) or a `budget` failure.
fn cut_outcome(
    seed: u64,
    cut: &Cut,
    trace: Option<&Trace>,
    node: Option<u32>,
    sim_time: Duration,
    wall_time: Duration,
) -> RunOutcome {
    let violation = (*cut != Cut::Interrupted).then(|| Violation {
        invariant: Invariant::Budget,
        caught_by: match cut {
            Cut::Memory { .. } => "budget memory".to_string(),
            _ => "budget wall time".to_string(),
        },
        time_ms: sim_time.as_millis() as u64,
        nodes: node.into_iter().collect(),
        detail: format!("the seed {cut}"),
    });
    RunOutcome {
        seed,
        trace_hash: trace.map_or(0, Trace::hash),
        events: trace.map_or(0, Trace::count),
        sim_time,
        wall_time,
        interrupted: *cut == Cut::Interrupted,
        peak_memory_bytes: 0,
        work_items: 0,
        probes: ProbeSet::default(),
        violation,
        recent: trace.map(Trace::recent).unwrap_or_default(),
        full_trace: None,
        stats: Stats::default(),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(b) = payload.downcast_ref::<Broken>() {
        b.detail.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// The violation a panic stands for. A node assertion of an invariant panics with a typed
/// [`Broken`] payload, so it is reported as that invariant, at its cause, on the node it ran
/// on. madsim's time limit is the seed's simulated-time budget: a liveness failure. Any other
/// panic is a `panic`.
pub fn classify_panic(
    payload: &(dyn std::any::Any + Send),
    at: Option<PanicPlace>,
    time_ms: u64,
) -> Violation {
    let (at, node) = at.map_or((None, None), |p| (p.at, p.node));
    let detail = panic_message(payload);
    let at = at.unwrap_or_else(|| "an unknown place".into());
    let (invariant, caught_by) = match payload.downcast_ref::<Broken>() {
        Some(b) => (b.invariant, format!("assertion at {}", b.at)),
        None if detail.contains("time limit exceeded") => {
            (Invariant::Liveness, "time limit".to_string())
        }
        None => (Invariant::Panic, format!("panic at {at}")),
    };
    Violation {
        invariant,
        caught_by,
        time_ms,
        nodes: node.into_iter().collect(),
        detail,
    }
}

/// Where a seed's panic happened, as the panic hook saw it.
#[derive(Clone, Debug, Default)]
pub struct PanicPlace {
    /// `file:line` of the panic.
    pub at: Option<String>,
    /// The node whose task panicked (none when the harness did).
    pub node: Option<u32>,
}

thread_local! {
    /// Where the last panic on this thread happened.
    static PANIC_AT: std::cell::RefCell<Option<PanicPlace>> = const { std::cell::RefCell::new(None) };
}

/// Called from a panic hook: remembers where a seed's panic happened and on which node, for
/// its report (the hook keeps the backtrace out of campaign output).
pub fn note_panic_location(location: Option<&std::panic::Location<'_>>) {
    let place = PanicPlace {
        at: location.map(|l| format!("{}:{}", l.file(), l.line())),
        node: madsim::plugin::try_node_name()
            .and_then(|n| crate::plan::Role::from_name(&n))
            .map(crate::plan::Role::id),
    };
    let _ = PANIC_AT.try_with(|cell| cell.replace(Some(place)));
}

fn run_on_this_thread(
    seed: u64,
    plan: &Plan,
    opts: &RunOptions,
    watch: Option<Watch>,
) -> RunOutcome {
    let wall = Instant::now();
    lakesim_nodes::probe::take_hits();
    let config = &plan.config;
    let mut runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim_config(config));
    let budget = Duration::from_millis(config.fault_window_ms + config.liveness_window_ms);
    runtime.set_time_limit(budget + Duration::from_secs(60));
    // The trace lives outside the simulation future so that a panic still leaves it readable.
    let trace = runtime.block_on(async { Trace::new(opts.keep_trace) });
    if let Some(watch) = &watch {
        trace.set_watch(Arc::new(watch.as_fn()));
    }
    let registry = NodeRegistry::default();
    let client = ClientLog::default();
    let result = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(simulate(
            seed,
            config,
            plan,
            opts,
            trace.clone(),
            registry.clone(),
            client.clone(),
        ))
    }));
    // What led to a panic, before the shutdown adds its own events.
    let (recent, sim_time) = (trace.recent(), trace.elapsed_at_last_event());
    // Whether the run ended or panicked, its nodes must go before the runtime does.
    let _ = catch_unwind(AssertUnwindSafe(|| runtime.block_on(shutdown(&registry))));
    let mut outcome = match result {
        Ok(outcome) => outcome,
        Err(payload) if payload.is::<Cut>() => {
            let cut = payload.downcast_ref::<Cut>().expect("checked");
            let node = PANIC_AT.with(|at| at.take()).and_then(|p| p.node);
            RunOutcome {
                recent,
                ..cut_outcome(seed, cut, Some(&trace), node, sim_time, Duration::ZERO)
            }
        }
        Err(payload) => RunOutcome {
            seed,
            trace_hash: trace.hash(),
            events: trace.count(),
            sim_time,
            wall_time: Duration::ZERO,
            violation: Some(classify_panic(
                payload.as_ref(),
                PANIC_AT.with(|at| at.take()),
                sim_time.as_millis() as u64,
            )),
            recent,
            full_trace: trace.events(),
            stats: Stats::default(),
            interrupted: false,
            peak_memory_bytes: 0,
            work_items: 0,
            probes: ProbeSet::default(),
        },
    };
    outcome.wall_time = wall.elapsed();
    outcome.peak_memory_bytes = crate::budget::peak_bytes();
    outcome.work_items = client.lock().writes.len() as u64;
    outcome.probes = lakesim_nodes::probe::take_hits();
    outcome
}

/// madsim's configuration: its default network, unless the cost model sets the latency.
fn madsim_config(config: &Config) -> madsim::Config {
    let mut sim = madsim::Config::default();
    if config.cost.enabled {
        let [lo, hi] = config.cost.network_latency_us;
        sim.net.send_latency = Duration::from_micros(lo)..Duration::from_micros(hi.max(lo + 1));
    }
    sim
}

async fn simulate(
    seed: u64,
    config: &Config,
    plan: &Plan,
    opts: &RunOptions,
    trace: Trace,
    registry: NodeRegistry,
    client: ClientLog,
) -> RunOutcome {
    let disks = make_disks(seed, config, plan, &trace);
    // The control plane creates the timeline on every safekeeper before the run.
    for id in crate::plan::safekeeper_ids(config.safekeepers) {
        lakesim_nodes::safekeeper::provision(&disks[&id])
            .await
            .expect("a fresh disk takes the timeline");
    }
    let disks_for_stats = disks.clone();
    let disks_of = |ids: Vec<u32>| {
        ids.into_iter()
            .map(|id| (NodeId(id), disks[&id].clone()))
            .collect()
    };
    let bucket = lakesim_nodes::object_store::Bucket::default();
    let pageservers = crate::plan::pageserver_ids(config.pageservers);
    let sources = Sources {
        image_policy: config.image_policy,
        safekeeper_disks: disks_of(crate::plan::safekeeper_ids(config.safekeepers)),
        wal_segment_size: crate::cluster::segment_size(config),
        remote_prefixes: pageservers
            .iter()
            .map(|id| (NodeId(*id), crate::cluster::remote_prefix(NodeId(*id))))
            .collect(),
        pageserver_disks: disks_of(pageservers),
        bucket: bucket.clone(),
        client: client.clone(),
    };
    let checker = Arc::new(Checker::new(trace.clone(), sources));
    let world = World {
        disks,
        bucket,
        work: client.record(plan.source()),
        links: lakesim_faults::Links::new(
            seed ^ crate::plan::STREAM_LINKS,
            plan.faults_chosen.duplicate_probability,
            Some(trace.clone()),
        ),
    };
    let mut cluster = Cluster::start(
        config,
        plan,
        &opts.bugs,
        trace.clone(),
        world,
        checker.clone(),
        registry,
    );
    let mut storage = StorageSamples::new(config, disks_for_stats.clone());
    let start = madsim::time::Instant::now();
    for event in &plan.faults {
        let at = start + Duration::from_millis(event.at_ms);
        if !wait_until(at, &checker, &mut storage).await {
            break;
        }
        cluster.apply(event);
    }
    let healed_at = trace.elapsed();
    let at_heal = checker.at_heal(cluster.safekeeper_retired());
    let end = start + Duration::from_millis(config.fault_window_ms + config.liveness_window_ms);
    if wait_until(end - LIVENESS_BOUND, &checker, &mut storage).await {
        let catch_up_target = checker.committed_lsn();
        if wait_until(end, &checker, &mut storage).await {
            checker.check_end(EndOfRun {
                healed_at,
                catch_up_target,
                at_heal,
            });
        }
    }
    let mut stats = checker.stats(plan.workload.load_txns());
    stats.bytes_fsynced = disks_for_stats.values().map(|d| d.stats().1).sum();
    let (_, sk, ps) = storage.sample(&checker);
    stats.metrics.set_storage_writes(&storage.samples, (sk, ps));
    let outcome = RunOutcome {
        seed,
        trace_hash: trace.hash(),
        events: trace.count(),
        sim_time: trace.elapsed(),
        wall_time: Duration::ZERO,
        violation: checker.violation(),
        recent: checker
            .events_before_violation()
            .unwrap_or_else(|| trace.recent()),
        full_trace: trace.events(),
        stats,
        interrupted: false,
        peak_memory_bytes: 0,
        work_items: 0,
        probes: ProbeSet::default(),
    };
    drop(cluster);
    outcome
}

/// What the safekeepers' and the pageservers' disks have written, sampled as the run goes
/// with the committed LSN, so that metrics can count the writes of the measured range only.
struct StorageSamples {
    disks: std::collections::BTreeMap<u32, lakesim_faults::Disk>,
    safekeepers: Vec<u32>,
    pageservers: Vec<u32>,
    samples: Vec<(lakesim_nodes::Lsn, u64, u64)>,
}

impl StorageSamples {
    fn new(config: &Config, disks: std::collections::BTreeMap<u32, lakesim_faults::Disk>) -> Self {
        StorageSamples {
            disks,
            safekeepers: crate::plan::safekeeper_ids(config.safekeepers),
            pageservers: crate::plan::pageserver_ids(config.pageservers),
            samples: Vec::new(),
        }
    }

    fn sample(&self, checker: &Checker) -> (lakesim_nodes::Lsn, u64, u64) {
        let written = |ids: &[u32]| ids.iter().map(|id| self.disks[id].stats().0).sum();
        (
            checker.committed_lsn(),
            written(&self.safekeepers),
            written(&self.pageservers),
        )
    }
}

/// Sleeps until `at`, waking to look for violations (and to sample the disks); false when one
/// was found.
async fn wait_until(
    at: madsim::time::Instant,
    checker: &Checker,
    storage: &mut StorageSamples,
) -> bool {
    loop {
        checker.audit();
        if checker.violation().is_some() {
            return false;
        }
        let sample = storage.sample(checker);
        storage.samples.push(sample);
        let now = madsim::time::Instant::now();
        if now >= at {
            return true;
        }
        madsim::time::sleep((at - now).min(CHECK_EVERY)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::classify_panic;
    use lakesim_nodes::invariant::{Broken, Invariant};

    #[test]
    fn a_node_assertion_counts_as_its_invariant_with_its_place() {
        let payload = Broken {
            invariant: Invariant::WalAgreement,
            detail: "one term began at two LSNs".into(),
            at: "nodes/src/proto.rs:56".into(),
        };
        let v = classify_panic(&payload, None, 7);
        assert_eq!(v.invariant, Invariant::WalAgreement);
        assert_eq!(v.caught_by, "assertion at nodes/src/proto.rs:56");
        assert_eq!(v.detail, "one term began at two LSNs");
    }

    #[test]
    fn other_panics_are_panics_and_the_time_limit_is_liveness() {
        let v = classify_panic(&"time limit exceeded: 72s", None, 0);
        assert_eq!(
            (v.invariant, v.caught_by.as_str()),
            (Invariant::Liveness, "time limit")
        );
        let v = classify_panic(
            &String::from("wal-agreement: words"),
            Some(super::PanicPlace {
                at: Some("x.rs:1".into()),
                node: Some(2),
            }),
            0,
        );
        assert_eq!(
            v.invariant,
            Invariant::Panic,
            "a string is never parsed for a name"
        );
        assert_eq!(v.caught_by, "panic at x.rs:1");
        assert_eq!(v.nodes, vec![2], "the node whose task panicked is named");
    }
}
