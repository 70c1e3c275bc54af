//! Seed + config -> plan: the workload and the fault schedule of one run, as data.
//!
//! Each concern draws from its own `rand_chacha` stream of the seed, so changing how faults are
//! scheduled does not change the workload, and the other way round. Scheduling, message timing
//! and in-node randomness are not planned: they come from madsim's seeded RNG.

use crate::config::WorkloadKind;
use crate::config::{Config, FaultConfig};
use lakesim_nodes::compute::workload::{DeltaSpec, Items, WorkItem, WorkSource};
use lakesim_nodes::page::CONTENT_SIZE;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

const STREAM_WORKLOAD: u64 = 0x776f_726b_6c6f_6164;
const STREAM_FAULTS: u64 = 0x6661_756c_7473_0000;
const STREAM_SWARM: u64 = 0x7377_6172_6d00_0000;
/// Disk errors, slow links and disks, every link cut, safekeeper rot and disk loss: their own
/// streams, so that adding them left the plans of scenarios without them as they were.
const STREAM_SWARM_DEVICES: u64 = 0x6465_7669_6365_7300;
const STREAM_FAULTS_DEVICES: u64 = 0x6465_7666_6175_6c74;
const STREAM_CONFIG: u64 = 0x636f_6e66_6967_0000;
/// Disks draw which unsynced sectors survive a crash from `seed ^ STREAM_DISK ^ node`.
pub const STREAM_DISK: u64 = 0x6469_736b_0000_0000;
/// The network's faults (which messages are duplicated) draw from `seed ^ STREAM_LINKS`.
pub const STREAM_LINKS: u64 = 0x6c69_6e6b_7300_0000;

/// What a node is, with its number among its kind (from 1). Node ids keep a fixed layout
/// (safekeepers 1.., computes 101.., pageservers 201.., the object store 301) so that plans and
/// traces stay readable; code asks a node's role instead of testing id ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Safekeeper(u32),
    Compute(u32),
    Pageserver(u32),
    ObjectStore,
}

const COMPUTE_BASE: u32 = 100;
const PAGESERVER_BASE: u32 = 200;
const OBJECT_STORE_ID: u32 = 301;

impl Role {
    pub fn id(self) -> u32 {
        match self {
            Role::Safekeeper(n) => n,
            Role::Compute(n) => COMPUTE_BASE + n,
            Role::Pageserver(n) => PAGESERVER_BASE + n,
            Role::ObjectStore => OBJECT_STORE_ID,
        }
    }

    pub fn of(id: u32) -> Role {
        match id {
            OBJECT_STORE_ID => Role::ObjectStore,
            n if n > PAGESERVER_BASE => Role::Pageserver(n - PAGESERVER_BASE),
            n if n > COMPUTE_BASE => Role::Compute(n - COMPUTE_BASE),
            n => Role::Safekeeper(n),
        }
    }

    /// The role a name from [`Role::name`] stands for.
    pub fn from_name(name: &str) -> Option<Role> {
        let num = |prefix: &str| {
            name.strip_prefix(prefix)?
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
        };
        if name == "object-store" {
            return Some(Role::ObjectStore);
        }
        num("sk")
            .map(Role::Safekeeper)
            .or_else(|| num("compute").map(Role::Compute))
            .or_else(|| num("pageserver").map(Role::Pageserver))
    }

    /// The node's name in madsim and in reports: `sk1`, `compute2`, `pageserver1`, ...
    pub fn name(self) -> String {
        match self {
            Role::Safekeeper(n) => format!("sk{n}"),
            Role::Compute(n) => format!("compute{n}"),
            Role::Pageserver(n) => format!("pageserver{n}"),
            Role::ObjectStore => "object-store".to_string(),
        }
    }
}

/// The first compute, the one a run starts with.
pub const FIRST_COMPUTE: u32 = COMPUTE_BASE + 1;
pub const OBJECT_STORE: u32 = OBJECT_STORE_ID;

pub fn pageserver_ids(count: usize) -> Vec<u32> {
    (1..=count as u32)
        .map(|n| Role::Pageserver(n).id())
        .collect()
}

pub fn safekeeper_ids(count: usize) -> Vec<u32> {
    (1..=count as u32)
        .map(|n| Role::Safekeeper(n).id())
        .collect()
}

/// Which fault kinds this seed turned on, and the rates it uses: the swarm choice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultMix {
    pub safekeeper_crashes_per_s: f64,
    pub compute_crashes_per_s: f64,
    pub partitions_per_s: f64,
    pub election_storms_per_s: f64,
    pub pageserver_crashes_per_s: f64,
    pub pageserver_disk_losses_per_s: f64,
    pub object_store_outages_per_s: f64,
    pub bitrot_per_s: f64,
    pub max_packet_loss: f64,
    pub torn_write_probability: f64,
    pub duplicate_probability: f64,
    pub second_compute: bool,
    /// One safekeeper is lost for good.
    #[serde(default)]
    pub safekeeper_loss: bool,
    /// BUGGIFY points in node code are on for this seed.
    pub buggify: bool,
    /// Chance that a crash keeps some unsynced directory operations.
    #[serde(default)]
    pub dir_land_probability: f64,
    #[serde(default)]
    pub read_errors_per_s: f64,
    #[serde(default)]
    pub fsync_failures_per_s: f64,
    #[serde(default)]
    pub disk_full_per_s: f64,
    #[serde(default)]
    pub slow_disks_per_s: f64,
    #[serde(default)]
    pub slow_links_per_s: f64,
    #[serde(default)]
    pub link_cuts_per_s: f64,
    #[serde(default)]
    pub slow_object_store_per_s: f64,
    #[serde(default)]
    pub safekeeper_bitrot_per_s: f64,
    /// One safekeeper loses its disk (and stays out: see the safekeeper module).
    #[serde(default)]
    pub safekeeper_disk_loss: bool,
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    pub at_ms: u64,
    #[serde(flatten)]
    pub action: FaultAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum FaultAction {
    /// Kill the node's process; its disk loses what was not durable.
    Crash {
        node: u32,
    },
    /// Kill the node's process for good: nothing restarts it (a minority of safekeepers may
    /// be lost this way; the rest of the system must stay live).
    Retire {
        node: u32,
    },
    /// Start the node's process again from its disk.
    Restart {
        node: u32,
    },
    /// Cut the node off from everyone, both ways.
    Isolate {
        node: u32,
    },
    Rejoin {
        node: u32,
    },
    /// Drop messages from `from` to `to` (one direction).
    Cut {
        from: u32,
        to: u32,
    },
    Uncut {
        from: u32,
        to: u32,
    },
    /// Set the network's packet loss rate.
    PacketLoss {
        rate: f64,
    },
    /// Lose the node's whole disk (the process is killed first).
    LoseDisk {
        node: u32,
    },
    /// Flip one bit of a durable file on the node's disk; `pick` chooses which.
    Rot {
        node: u32,
        pick: u32,
    },
    /// Start another compute (the control plane replacing one it believes dead).
    StartCompute {
        node: u32,
    },
    /// Sectors of a durable file on the node's disk read back EIO, for `for_ms` or (without
    /// it) until rewritten; `pick` chooses the file and sector.
    FailReads {
        node: u32,
        pick: u32,
        sectors: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_ms: Option<u64>,
    },
    /// The node's next fsync fails with EIO and drops that file's dirty data.
    FailSync {
        node: u32,
    },
    /// The node's disk is full: no more space than it uses now.
    DiskFull {
        node: u32,
    },
    /// Space again on the node's disk.
    DiskSpace {
        node: u32,
    },
    /// Every fsync and read on the node's disk takes `extra_ms` longer for `for_ms`.
    SlowDisk {
        node: u32,
        extra_ms: u64,
        for_ms: u64,
    },
    /// Messages from `from` to `to` leave `extra_ms` late for `for_ms`.
    SlowLink {
        from: u32,
        to: u32,
        extra_ms: u64,
        for_ms: u64,
    },
    /// End of the fault window: every node up, every link whole, no loss.
    HealAll,
}

/// A run, as data.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The configuration this run uses: the one it was planned from, with the settings the
    /// seed drew when `swarm.enabled` (see [`draw_config`]).
    pub config: Config,
    pub faults_chosen: FaultMix,
    pub faults: Vec<FaultEvent>,
    pub workload: WorkloadPlan,
    /// The client stops after this many work items (a shrunk plan's shorter workload); all of
    /// them when none.
    pub work_items: Option<u64>,
}

/// The client's work: planned in full (synthetic), or a generator's seed and parameters (a
/// closed-loop run's length is not known in advance), or a Postgres trace to replay.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadPlan {
    Items(Vec<WorkItem>),
    Tpcb(crate::tpcb::TpcbSpec),
    PgTrace(std::sync::Arc<crate::pgtrace::Trace>),
}

impl WorkloadPlan {
    /// A fresh source of this work for one run's client.
    pub fn source(&self) -> Box<dyn WorkSource> {
        match self {
            WorkloadPlan::Items(items) => Box::new(Items::new(items.clone())),
            WorkloadPlan::Tpcb(spec) => Box::new(crate::tpcb::Tpcb::new(spec.clone())),
            WorkloadPlan::PgTrace(trace) => Box::new(crate::pgtrace::Replay::new(trace.clone())),
        }
    }

    /// How many transactions load the database before the measured work (a checkpoint
    /// follows them), if the work starts with a load.
    pub fn load_txns(&self) -> Option<u64> {
        match self {
            WorkloadPlan::Items(_) => None,
            WorkloadPlan::Tpcb(spec) => {
                Some(u64::from(crate::tpcb::Layout::new(spec.scale).history))
            }
            WorkloadPlan::PgTrace(trace) => Some(trace.start_pages()),
        }
    }
}

/// The first `left` items of a source.
struct FirstItems {
    inner: Box<dyn WorkSource>,
    left: u64,
}

impl WorkSource for FirstItems {
    fn next(&mut self) -> Option<WorkItem> {
        self.left = self.left.checked_sub(1)?;
        self.inner.next()
    }
}

/// A time in the middle half of the fault window (its start when the window is too short to
/// have a middle).
fn mid_window(rng: &mut ChaCha8Rng, window: u64) -> u64 {
    let (lo, hi) = (window / 4, window * 3 / 4);
    if hi > lo {
        rng.gen_range(lo..hi)
    } else {
        lo
    }
}

impl FaultAction {
    /// The nodes the action names.
    pub fn nodes(&self) -> Vec<u32> {
        use FaultAction as A;
        match *self {
            A::Crash { node }
            | A::Retire { node }
            | A::Restart { node }
            | A::Isolate { node }
            | A::Rejoin { node }
            | A::LoseDisk { node }
            | A::Rot { node, .. }
            | A::StartCompute { node }
            | A::FailReads { node, .. }
            | A::FailSync { node }
            | A::DiskFull { node }
            | A::DiskSpace { node }
            | A::SlowDisk { node, .. } => vec![node],
            A::Cut { from, to } | A::Uncut { from, to } | A::SlowLink { from, to, .. } => {
                vec![from, to]
            }
            A::PacketLoss { .. } | A::HealAll => vec![],
        }
    }
}

impl Plan {
    /// A fresh source of this plan's work for one run's client.
    pub fn source(&self) -> Box<dyn WorkSource> {
        let all = self.workload.source();
        match self.work_items {
            Some(left) => Box::new(FirstItems { inner: all, left }),
            None => all,
        }
    }

    /// Replaces the fault schedule with one a seed file gives (shrunk or edited by hand),
    /// after checking that this cluster can run it: known nodes, times in order within the
    /// fault window, rates between 0 and 1.
    pub fn with_faults(
        mut self,
        faults_chosen: FaultMix,
        faults: Vec<FaultEvent>,
    ) -> Result<Plan, String> {
        let c = &self.config;
        let mut known: Vec<u32> = safekeeper_ids(c.safekeepers);
        known.extend(pageserver_ids(c.pageservers));
        known.extend([FIRST_COMPUTE, FIRST_COMPUTE + 1, OBJECT_STORE]);
        let mut last = 0;
        for (i, e) in faults.iter().enumerate() {
            let at = format!("plan.faults[{i}] ({:?} at {} ms)", e.action, e.at_ms);
            if let Some(n) = e.action.nodes().into_iter().find(|n| !known.contains(n)) {
                return Err(format!(
                    "{at}: no node {n} in this cluster; nodes are {known:?}"
                ));
            }
            if e.at_ms < last || e.at_ms > c.fault_window_ms {
                return Err(format!(
                    "{at}: times must not go back and must be within the fault window (0 to {} ms)",
                    c.fault_window_ms
                ));
            }
            if let FaultAction::PacketLoss { rate } = e.action {
                if !(0.0..=1.0).contains(&rate) {
                    return Err(format!("{at}: rate must be between 0 and 1"));
                }
            }
            last = e.at_ms;
        }
        self.faults_chosen = faults_chosen;
        self.faults = faults;
        Ok(self)
    }

    pub fn generate(seed: u64, base: &Config) -> Plan {
        let config = &draw_config(seed, base);
        let faults_chosen = choose_mix(seed, &config.faults);
        let mut faults = schedule_faults(seed, config, &faults_chosen);
        schedule_device_faults(seed, config, &faults_chosen, &mut faults);
        let workload = match config.workload.kind {
            WorkloadKind::Synthetic => WorkloadPlan::Items(generate_workload(seed, config)),
            WorkloadKind::Tpcb => WorkloadPlan::Tpcb(crate::tpcb::TpcbSpec::new(
                seed ^ STREAM_WORKLOAD,
                &config.workload,
            )),
            WorkloadKind::PgTrace => {
                let path = config.workload.trace.as_ref().expect("validated: a trace");
                let trace = crate::pgtrace::Trace::load(path).expect("validated: a readable trace");
                WorkloadPlan::PgTrace(std::sync::Arc::new(trace))
            }
        };
        Plan {
            config: config.clone(),
            faults_chosen,
            faults,
            workload,
            work_items: None,
        }
    }
}

/// Swarm testing over configuration: the settings this seed runs with, drawn from its own
/// stream within the ranges `swarm` gives. A setting the base config asks for (full-page
/// writes on, two pageservers) is kept.
pub fn draw_config(seed: u64, base: &Config) -> Config {
    let s = &base.swarm;
    if !s.enabled {
        return base.clone();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ STREAM_CONFIG);
    let full_page_writes = rng.gen_bool(s.full_page_writes_share) || base.full_page_writes;
    let two = rng.gen_bool(s.two_pageservers_share) || base.pageservers == 2;
    let [lo, hi] = s.image_threshold;
    let threshold = rng.gen_range(lo..=hi);
    let [lo, hi] = s.checkpoint_distance_kb;
    let checkpoint_distance_kb = rng.gen_range(lo..=hi);
    let wal_segment_kb = *s
        .wal_segment_kb
        .choose(&mut rng)
        .expect("validated: not empty");
    Config {
        full_page_writes,
        pageservers: if two { 2 } else { 1 },
        image_policy: match base.image_policy {
            crate::config::ImagePolicy::PerPageRecords(_) => {
                crate::config::ImagePolicy::PerPageRecords(threshold)
            }
            other => other,
        },
        checkpoint_distance_kb,
        wal_segment_kb,
        ..base.clone()
    }
}

fn choose_mix(seed: u64, f: &FaultConfig) -> FaultMix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ STREAM_SWARM);
    let mut pick = |value: f64| {
        if !f.swarm {
            return value;
        }
        // Swarm testing: each kind is off in a third of seeds, otherwise scaled 0.25x to 2x.
        if rng.gen_bool(1.0 / 3.0) {
            0.0
        } else {
            value * rng.gen_range(0.25..2.0)
        }
    };
    let mix = FaultMix {
        safekeeper_crashes_per_s: pick(f.safekeeper_crashes_per_s),
        compute_crashes_per_s: pick(f.compute_crashes_per_s),
        partitions_per_s: pick(f.partitions_per_s),
        election_storms_per_s: pick(f.election_storms_per_s),
        pageserver_crashes_per_s: pick(f.pageserver_crashes_per_s),
        pageserver_disk_losses_per_s: pick(f.pageserver_disk_losses_per_s),
        object_store_outages_per_s: pick(f.object_store_outages_per_s),
        bitrot_per_s: pick(f.bitrot_per_s),
        max_packet_loss: pick(f.max_packet_loss).min(0.5),
        torn_write_probability: pick(f.torn_write_probability).min(1.0),
        duplicate_probability: pick(f.duplicate_probability).min(0.5),
        second_compute: f.second_compute,
        safekeeper_loss: f.safekeeper_loss,
        buggify: false,
        ..FaultMix::default()
    };
    let mix = FaultMix {
        second_compute: mix.second_compute && (!f.swarm || rng.gen_bool(0.5)),
        buggify: rng.gen_bool(f.buggify_share),
        safekeeper_loss: mix.safekeeper_loss && (!f.swarm || rng.gen_bool(0.5)),
        ..mix
    };
    choose_device_mix(seed, f, mix)
}

/// The device and link faults of the mix, from their own stream (see [`STREAM_SWARM_DEVICES`]).
fn choose_device_mix(seed: u64, f: &FaultConfig, mix: FaultMix) -> FaultMix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ STREAM_SWARM_DEVICES);
    let mut pick = |value: f64| {
        if !f.swarm || value == 0.0 {
            return value;
        }
        if rng.gen_bool(1.0 / 3.0) {
            0.0
        } else {
            value * rng.gen_range(0.25..2.0)
        }
    };
    let mut mix = FaultMix {
        dir_land_probability: pick(f.dir_land_probability).min(1.0),
        read_errors_per_s: pick(f.read_errors_per_s),
        fsync_failures_per_s: pick(f.fsync_failures_per_s),
        disk_full_per_s: pick(f.disk_full_per_s),
        slow_disks_per_s: pick(f.slow_disks_per_s),
        slow_links_per_s: pick(f.slow_links_per_s),
        link_cuts_per_s: pick(f.link_cuts_per_s),
        slow_object_store_per_s: pick(f.slow_object_store_per_s),
        safekeeper_bitrot_per_s: pick(f.safekeeper_bitrot_per_s),
        safekeeper_disk_loss: f.safekeeper_disk_loss,
        ..mix
    };
    // At most one safekeeper is out for good, so that the rest keep a quorum.
    mix.safekeeper_disk_loss &= !mix.safekeeper_loss && (!f.swarm || rng.gen_bool(0.5));
    mix
}

/// Milliseconds to the next event of a Poisson process with `rate_per_s`.
fn next_gap_ms(rng: &mut ChaCha8Rng, rate_per_s: f64) -> u64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    (-u.ln() * 1000.0 / rate_per_s) as u64 + 1
}

/// Times at which a kind of fault strikes within the window.
fn strikes(rng: &mut ChaCha8Rng, rate_per_s: f64, window_ms: u64) -> Vec<u64> {
    let mut at = Vec::new();
    if rate_per_s <= 0.0 {
        return at;
    }
    let mut t = next_gap_ms(rng, rate_per_s);
    while t < window_ms {
        at.push(t);
        t += next_gap_ms(rng, rate_per_s);
    }
    at
}

fn schedule_faults(seed: u64, config: &Config, mix: &FaultMix) -> Vec<FaultEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ STREAM_FAULTS);
    let window = config.fault_window_ms;
    let sks = safekeeper_ids(config.safekeepers);
    let mut events = Vec::new();
    let mut push = |at_ms: u64, action: FaultAction| events.push(FaultEvent { at_ms, action });

    // A second compute: the control plane replaces the first, which it believes dead, while
    // that one is cut off but alive; it may come back before or after the new one is elected.
    let second_at = mix.second_compute.then(|| mid_window(&mut rng, window));
    if let Some(t) = second_at {
        push(
            t,
            FaultAction::Isolate {
                node: FIRST_COMPUTE,
            },
        );
        let next = FIRST_COMPUTE + 1;
        push(
            t + rng.gen_range(50..500),
            FaultAction::StartCompute { node: next },
        );
        push(
            t + rng.gen_range(100..3000),
            FaultAction::Rejoin {
                node: FIRST_COMPUTE,
            },
        );
    }
    let computes_at = |t: u64| match second_at {
        Some(s) if t > s + 500 => vec![FIRST_COMPUTE, FIRST_COMPUTE + 1],
        _ => vec![FIRST_COMPUTE],
    };
    for t in strikes(&mut rng, mix.safekeeper_crashes_per_s, window) {
        let node = sks[rng.gen_range(0..sks.len())];
        push(t, FaultAction::Crash { node });
        push(t + rng.gen_range(20..1500), FaultAction::Restart { node });
    }
    for t in strikes(&mut rng, mix.compute_crashes_per_s, window) {
        let computes = computes_at(t);
        let node = computes[rng.gen_range(0..computes.len())];
        push(t, FaultAction::Crash { node });
        push(t + rng.gen_range(20..1000), FaultAction::Restart { node });
    }
    // When the compute is cut off from a majority of safekeepers, and for how long.
    let mut cut_off: Vec<(u64, u64)> = Vec::new();
    for t in strikes(&mut rng, mix.partitions_per_s, window) {
        let len = rng.gen_range(50..2000);
        let computes = computes_at(t);
        let compute = computes[rng.gen_range(0..computes.len())];
        let mut all = sks.clone();
        all.push(compute);
        match rng.gen_range(0..4) {
            0 => {
                let node = all[rng.gen_range(0..all.len())];
                push(t, FaultAction::Isolate { node });
                push(t + len, FaultAction::Rejoin { node });
                if node == compute {
                    cut_off.push((t, len));
                }
            }
            1 => {
                let from = all[rng.gen_range(0..all.len())];
                let to = all[rng.gen_range(0..all.len())];
                if from != to {
                    push(t, FaultAction::Cut { from, to });
                    push(t + len, FaultAction::Uncut { from, to });
                }
            }
            2 => {
                // A minority of safekeepers split from the rest, both ways.
                let start = rng.gen_range(0..sks.len());
                for i in 0..sks.len() / 2 {
                    let node = sks[(start + i) % sks.len()];
                    push(t, FaultAction::Isolate { node });
                    push(t + len, FaultAction::Rejoin { node });
                }
            }
            _ => {
                // The compute reaches only some safekeepers: its newest WAL lands on a subset,
                // which is how acceptors come to hold divergent, uncommitted tails.
                let cut = rng.gen_range(1..sks.len());
                let start = rng.gen_range(0..sks.len());
                for i in 0..cut {
                    let sk = sks[(start + i) % sks.len()];
                    for (from, to) in [(compute, sk), (sk, compute)] {
                        push(t, FaultAction::Cut { from, to });
                        push(t + len, FaultAction::Uncut { from, to });
                    }
                }
                if cut > sks.len() / 2 {
                    cut_off.push((t, len));
                }
            }
        }
    }
    // The control plane: a compute cut off from a majority for longer than its timeout is
    // replaced by a new one (once a run), which campaigns while the old one may still live.
    let replace_after = config.faults.replace_cut_off_compute_after_ms;
    let replaced = (replace_after > 0 && second_at.is_none())
        .then(|| cut_off.iter().find(|(_, len)| *len > replace_after))
        .flatten();
    if let Some((t, _)) = replaced {
        push(
            t + replace_after,
            FaultAction::StartCompute {
                node: FIRST_COMPUTE + 1,
            },
        );
    }
    let pss = pageserver_ids(config.pageservers);
    for t in strikes(&mut rng, mix.pageserver_crashes_per_s, window) {
        let node = pss[rng.gen_range(0..pss.len())];
        push(t, FaultAction::Crash { node });
        push(t + rng.gen_range(20..1500), FaultAction::Restart { node });
    }
    for t in strikes(&mut rng, mix.pageserver_disk_losses_per_s, window) {
        let node = pss[rng.gen_range(0..pss.len())];
        push(t, FaultAction::LoseDisk { node });
        push(t + rng.gen_range(20..1500), FaultAction::Restart { node });
    }
    for t in strikes(&mut rng, mix.object_store_outages_per_s, window) {
        push(t, FaultAction::Crash { node: OBJECT_STORE });
        push(
            t + rng.gen_range(100..3000),
            FaultAction::Restart { node: OBJECT_STORE },
        );
    }
    for t in strikes(&mut rng, mix.bitrot_per_s, window) {
        let node = pss[rng.gen_range(0..pss.len())];
        push(
            t,
            FaultAction::Rot {
                node,
                pick: rng.gen(),
            },
        );
    }
    // One storm at a time: rounds of two storms interleaved would cut each other short.
    let mut calm_from = 0;
    for t in strikes(&mut rng, mix.election_storms_per_s, window) {
        let t = t.max(calm_from);
        let computes = computes_at(t);
        let compute = computes[rng.gen_range(0..computes.len())];
        calm_from = election_storm(&mut rng, t, compute, &sks, &mut push);
    }
    if mix.max_packet_loss > 0.0 {
        for t in strikes(&mut rng, 0.5, window) {
            let rate = rng.gen_range(0.0..mix.max_packet_loss);
            push(t, FaultAction::PacketLoss { rate });
            push(
                t + rng.gen_range(100..2000),
                FaultAction::PacketLoss { rate: 0.0 },
            );
        }
    }
    if mix.safekeeper_loss {
        let node = sks[rng.gen_range(0..sks.len())];
        push(mid_window(&mut rng, window), FaultAction::Retire { node });
    }
    push(window, FaultAction::HealAll);
    events.retain(|e| e.at_ms <= window);
    // Stable: events at the same time keep their generation order.
    events.sort_by_key(|e| e.at_ms);
    events
}

/// Disk errors, slow disks and links, cuts on every kind of link, safekeeper rot and disk loss,
/// appended to the plan from their own stream. Every disk fault ends by the heal at the end of
/// the window at the latest (the operator replaces the drive, grows the volume).
fn schedule_device_faults(
    seed: u64,
    config: &Config,
    mix: &FaultMix,
    events: &mut Vec<FaultEvent>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ STREAM_FAULTS_DEVICES);
    let window = config.fault_window_ms;
    let sks = safekeeper_ids(config.safekeepers);
    let pss = pageserver_ids(config.pageservers);
    let disks: Vec<u32> = sks.iter().chain(&pss).copied().collect();
    let mut computes = vec![FIRST_COMPUTE];
    if mix.second_compute || config.faults.replace_cut_off_compute_after_ms > 0 {
        computes.push(FIRST_COMPUTE + 1);
    }
    let mut all: Vec<u32> = disks.iter().chain(&computes).copied().collect();
    all.push(OBJECT_STORE);
    let mut more = Vec::new();
    let mut push = |at_ms: u64, action: FaultAction| more.push(FaultEvent { at_ms, action });
    let pick_of = |rng: &mut ChaCha8Rng, from: &[u32]| from[rng.gen_range(0..from.len())];
    for t in strikes(&mut rng, mix.read_errors_per_s, window) {
        let node = pick_of(&mut rng, &disks);
        let for_ms = rng.gen_bool(0.5).then(|| rng.gen_range(100..2000));
        let (pick, sectors) = (rng.gen(), rng.gen_range(1..=4));
        push(
            t,
            FaultAction::FailReads {
                node,
                pick,
                sectors,
                for_ms,
            },
        );
    }
    for t in strikes(&mut rng, mix.fsync_failures_per_s, window) {
        let node = pick_of(&mut rng, &disks);
        push(t, FaultAction::FailSync { node });
    }
    for t in strikes(&mut rng, mix.disk_full_per_s, window) {
        let node = pick_of(&mut rng, &disks);
        push(t, FaultAction::DiskFull { node });
        push(
            t + rng.gen_range(100..2000),
            FaultAction::DiskSpace { node },
        );
    }
    for t in strikes(&mut rng, mix.slow_disks_per_s, window) {
        let node = pick_of(&mut rng, &disks);
        let (extra_ms, for_ms) = (rng.gen_range(5..200), rng.gen_range(100..2000));
        push(
            t,
            FaultAction::SlowDisk {
                node,
                extra_ms,
                for_ms,
            },
        );
    }
    for t in strikes(&mut rng, mix.slow_links_per_s, window) {
        let (from, to) = (pick_of(&mut rng, &all), pick_of(&mut rng, &all));
        let (extra_ms, for_ms) = (rng.gen_range(10..500), rng.gen_range(100..2000));
        if from != to {
            push(
                t,
                FaultAction::SlowLink {
                    from,
                    to,
                    extra_ms,
                    for_ms,
                },
            );
        }
    }
    // Cuts on the links the partitions above never touch: pageserver to safekeeper, to the
    // object store, and compute to pageserver; one way or both.
    for t in strikes(&mut rng, mix.link_cuts_per_s, window) {
        let ps = pick_of(&mut rng, &pss);
        let other = match rng.gen_range(0..3) {
            0 => pick_of(&mut rng, &sks),
            1 => OBJECT_STORE,
            _ => pick_of(&mut rng, &computes),
        };
        let len = rng.gen_range(50..2000);
        let both = rng.gen_bool(0.5);
        let (from, to) = if rng.gen_bool(0.5) {
            (ps, other)
        } else {
            (other, ps)
        };
        let mut links = vec![(from, to)];
        if both {
            links.push((to, from));
        }
        for (from, to) in links {
            push(t, FaultAction::Cut { from, to });
            push(t + len, FaultAction::Uncut { from, to });
        }
    }
    // A slow object store: every request and answer late, often past the client's timeout.
    for t in strikes(&mut rng, mix.slow_object_store_per_s, window) {
        let (extra_ms, for_ms) = (rng.gen_range(100..1500), rng.gen_range(200..3000));
        for &ps in &pss {
            for (from, to) in [(ps, OBJECT_STORE), (OBJECT_STORE, ps)] {
                push(
                    t,
                    FaultAction::SlowLink {
                        from,
                        to,
                        extra_ms,
                        for_ms,
                    },
                );
            }
        }
    }
    // Rot and disk loss strike one safekeeper, the one retired if one is: an honest safekeeper
    // whose WAL rotted below its commit LSN stays out, and two out of three is no quorum, a
    // double fault the design does not claim to survive.
    let retired = events.iter().find_map(|e| match e.action {
        FaultAction::Retire { node } => Some(node),
        _ => None,
    });
    let victim = retired.unwrap_or_else(|| pick_of(&mut rng, &sks));
    for t in strikes(&mut rng, mix.safekeeper_bitrot_per_s, window) {
        push(
            t,
            FaultAction::Rot {
                node: victim,
                pick: rng.gen(),
            },
        );
    }
    if mix.safekeeper_disk_loss {
        let node = victim;
        let t = mid_window(&mut rng, window);
        push(t, FaultAction::LoseDisk { node });
        push(t + rng.gen_range(20..1500), FaultAction::Restart { node });
    }
    more.retain(|e| e.at_ms < window);
    events.extend(more);
    // Stable: the old kinds keep their order among events at the same time.
    events.sort_by_key(|e| e.at_ms);
}

/// A burst of 3 to 6 rounds: the compute crashes and restarts, is elected, then reaches only
/// some safekeepers (so its newest WAL lands on a minority or a bare majority) and crashes again.
/// This is how acceptors end up on several divergent branches of different terms, the ground
/// on which election and commit rules are tested. Half the rounds, the election sees only a bare
/// majority, and like Jepsen's majorities-ring nemesis it leaves out the safekeepers the last
/// leader kept, which hold the newest branch; half the voters the leader loses, it loses one way
/// just after asking for votes, so they vote yet never hear `ProposerElected` or any WAL of the
/// term. Raft's figure 8 is made of such rounds.
fn election_storm(
    rng: &mut ChaCha8Rng,
    start: u64,
    compute: u32,
    sks: &[u32],
    push: &mut impl FnMut(u64, FaultAction),
) -> u64 {
    let quorum = sks.len() / 2 + 1;
    let mut kept: Vec<u32> = Vec::new();
    let mut t = start;
    for _ in 0..rng.gen_range(3..=6) {
        push(t, FaultAction::Crash { node: compute });
        let down_at = t;
        t += rng.gen_range(10..100);
        push(t, FaultAction::Restart { node: compute });
        let cut_at = t + rng.gen_range(40..160);
        let crash_at = cut_at + rng.gen_range(10..200);
        let mut order = sks.to_vec();
        order.shuffle(rng);
        let electorate = if rng.gen_bool(0.5) { quorum } else { sks.len() };
        // Voters first, the last leader's safekeepers last (a stable sort keeps the shuffle).
        order.sort_by_key(|sk| kept.contains(sk));
        let reach = rng.gen_range(1..electorate);
        let mut cut = |at: u64, sk: u32, both: bool| {
            let one_way = [(compute, sk)];
            let two_ways = [(compute, sk), (sk, compute)];
            for &(from, to) in if both { &two_ways[..] } else { &one_way[..] } {
                push(at, FaultAction::Cut { from, to });
                push(crash_at, FaultAction::Uncut { from, to });
            }
        };
        for &sk in &order[reach..electorate] {
            match rng.gen_bool(0.5) {
                true => cut(t + rng.gen_range(10..60), sk, false),
                false => cut(cut_at, sk, true),
            }
        }
        for &sk in &order[electorate..] {
            cut(down_at, sk, true);
        }
        kept = order[..reach].to_vec();
        t = crash_at;
    }
    push(t, FaultAction::Crash { node: compute });
    let end = t + rng.gen_range(10..100);
    push(end, FaultAction::Restart { node: compute });
    end
}

fn generate_workload(seed: u64, config: &Config) -> Vec<WorkItem> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ STREAM_WORKLOAD);
    let w = &config.workload;
    let run_ms = config.fault_window_ms + config.liveness_window_ms;
    let txns = (run_ms / w.txn_interval_ms) as u32 + 16;
    let mut items =
        Vec::with_capacity(txns as usize + txns as usize / w.checkpoint_every_txns as usize);
    for i in 0..txns {
        if i > 0 && i % w.checkpoint_every_txns == 0 {
            items.push(WorkItem::Checkpoint);
        }
        let deltas = (0..rng.gen_range(1..=w.max_deltas_per_txn))
            .map(|_| {
                let page = if rng.gen_bool(w.hot_share) || w.hot_pages == w.pages {
                    rng.gen_range(0..w.hot_pages)
                } else {
                    rng.gen_range(w.hot_pages..w.pages)
                };
                let len = rng.gen_range(1..=w.max_delta_bytes);
                let offset = rng.gen_range(0..=(CONTENT_SIZE - len as usize)) as u16;
                DeltaSpec {
                    page,
                    offset,
                    len,
                    seed: rng.gen(),
                }
            })
            .collect();
        items.push(WorkItem::Txn { deltas });
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any configuration `validate` accepts plans without a panic (a window too short to
        /// have a middle, every fault kind at any rate), and its schedule passes the checks an
        /// explicit plan in a seed file must pass.
        #[test]
        fn every_valid_config_plans(
            seed in any::<u64>(),
            fault_window_ms in prop_oneof![Just(0u64), Just(1), Just(2), 0u64..20_000],
            liveness_window_ms in 1_000u64..6_000,
            rate in 0.0f64..20.0,
            flags in any::<[bool; 6]>(),
            pages in 1u32..8,
            hot_pages in 1u32..8,
            hot_share in 0.0f64..=1.0,
            safekeepers in prop_oneof![Just(3usize), Just(5)],
            pageservers in 1usize..=2,
        ) {
            let mut c = Config {
                fault_window_ms,
                liveness_window_ms,
                safekeepers,
                pageservers,
                ..Config::default()
            };
            let f = &mut c.faults;
            for r in [
                &mut f.safekeeper_crashes_per_s, &mut f.compute_crashes_per_s,
                &mut f.partitions_per_s, &mut f.election_storms_per_s,
                &mut f.pageserver_crashes_per_s, &mut f.pageserver_disk_losses_per_s,
                &mut f.object_store_outages_per_s, &mut f.bitrot_per_s,
                &mut f.read_errors_per_s, &mut f.fsync_failures_per_s, &mut f.disk_full_per_s,
                &mut f.slow_disks_per_s, &mut f.slow_links_per_s, &mut f.link_cuts_per_s,
                &mut f.slow_object_store_per_s, &mut f.safekeeper_bitrot_per_s,
            ] {
                *r = rate;
            }
            f.max_packet_loss = if flags[0] { 0.3 } else { 0.0 };
            f.second_compute = flags[1];
            f.safekeeper_loss = flags[2];
            f.safekeeper_disk_loss = flags[3] && !flags[2];
            f.swarm = flags[4];
            f.replace_cut_off_compute_after_ms = if flags[5] { 100 } else { 0 };
            c.workload.pages = pages;
            c.workload.hot_pages = hot_pages;
            c.workload.hot_share = hot_share;
            prop_assume!(c.validate().is_ok());
            let plan = Plan::generate(seed, &c);
            let (mix, faults) = (plan.faults_chosen.clone(), plan.faults.clone());
            prop_assert!(plan.with_faults(mix, faults).is_ok());
        }
    }
}
