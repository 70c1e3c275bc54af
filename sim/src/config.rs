//! The run configuration: cluster shape, workload, faults and timing. Plain data, so a scenario
//! is just a named value of it and `--config FILE` is TOML of the same shape.

use anyhow::{bail, Context, Result};
use lakesim_faults::DiskConfig;
pub use lakesim_nodes::pageserver::compaction::ImagePolicy;
use serde::{Deserialize, Serialize};

/// The most transactions a synthetic workload plans (about 100 bytes each).
const MAX_PLANNED_TXNS: u64 = 1_000_000;

/// Everything that shapes a run besides the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Safekeepers: 3 or 5.
    pub safekeepers: usize,
    /// Pageservers: 1 or 2, each ingesting on its own.
    pub pageservers: usize,
    /// When a pageserver writes a page image: `per-page-records:N` (Lakebase: once a page's
    /// chain is longer than N records), `layer-count:N` (Neon: once N delta layers cover a key
    /// range since its last image) or `none`.
    pub image_policy: ImagePolicy,
    /// A pageserver flushes its open layer to a delta layer file at this much WAL (Neon's
    /// `checkpoint_distance`, 256 MiB there; small here so that short runs flush often).
    pub checkpoint_distance_kb: u32,
    /// Simulated time the faults may act.
    pub fault_window_ms: u64,
    /// Simulated time after the faults heal in which commits must be acknowledged again.
    pub liveness_window_ms: u64,
    /// Log a full-page image on the first touch of a page after a checkpoint.
    pub full_page_writes: bool,
    /// Postgres's `checkpoint_timeout`: a checkpoint this long after the last (default 5 min).
    pub checkpoint_timeout_ms: u64,
    /// Postgres's `max_wal_size`: a checkpoint starts once `max_wal_size / (1 +
    /// checkpoint_completion_target)` of WAL (target 0.9) was written since the last one.
    pub max_wal_size_mb: u64,
    /// The safekeepers' WAL segment size, KiB: a power of two from 4 (Neon: 16 MiB; small here
    /// so that short runs remove segments often).
    pub wal_segment_kb: u64,
    /// Settings each seed draws for itself (swarm testing over configuration).
    pub swarm: ConfigSwarm,
    pub workload: WorkloadConfig,
    pub cost: CostConfig,
    pub faults: FaultConfig,
    pub disk: DiskConfig,
    pub timing: TimingConfig,
}

/// Swarm testing over configuration: with `enabled`, each seed draws these settings within
/// the ranges given (a scenario pins one by giving a single value, or a share of 0 or 1), and
/// the run reports what it drew. A run that asks for `full_page_writes` or two pageservers
/// gets them in every seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigSwarm {
    pub enabled: bool,
    /// Share of seeds with `full_page_writes` on.
    pub full_page_writes_share: f64,
    /// Share of seeds with two pageservers.
    pub two_pageservers_share: f64,
    /// `per-page-records:N` thresholds, `[min, max]`.
    pub image_threshold: [usize; 2],
    /// `checkpoint_distance_kb`, `[min, max]`.
    pub checkpoint_distance_kb: [u32; 2],
    /// WAL segment sizes (KiB) to draw from.
    pub wal_segment_kb: Vec<u64>,
}

impl Default for ConfigSwarm {
    fn default() -> Self {
        ConfigSwarm {
            enabled: false,
            full_page_writes_share: 0.4,
            two_pageservers_share: 0.4,
            image_threshold: [2, 32],
            checkpoint_distance_kb: [8, 128],
            wal_segment_kb: vec![16, 64, 256],
        }
    }
}

/// Which transactions the client runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Random deltas over a few hot and many cold pages (fuzzing's default).
    Synthetic,
    /// pgbench's TPC-B-like transaction (`lakesim::tpcb`).
    Tpcb,
    /// Real Postgres WAL, replayed from a trace `lakesim import-wal` made (`lakesim::pgtrace`).
    PgTrace,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadConfig {
    pub kind: WorkloadKind,
    /// Clients running closed-loop, as pgbench's `--clients`: each starts its next
    /// transaction when its last one is acknowledged. 0: one transaction every
    /// `txn_interval_ms` (open loop, the synthetic default).
    pub clients: usize,
    /// tpcb: pgbench's scale factor (100,000 accounts, 10 tellers, 1 branch per unit).
    pub scale: u32,
    /// tpcb: 0 picks accounts uniformly, as pgbench does; above 0 picks them as pgbench's
    /// `random_exponential` with this parameter (skew towards the first accounts).
    pub account_skew: f64,
    /// pg-trace: the trace file to replay.
    pub trace: Option<std::path::PathBuf>,
    /// Reads go to this page with probability `hot_read_share` (the hot-page experiment).
    pub hot_read_page: Option<u32>,
    pub hot_read_share: f64,
    /// synthetic: pages the workload writes.
    pub pages: u32,
    /// The first `hot_pages` pages take `hot_share` of the writes.
    pub hot_pages: u32,
    pub hot_share: f64,
    /// Page deltas per transaction: 1 to this.
    pub max_deltas_per_txn: u32,
    /// Bytes per delta: 1 to this.
    pub max_delta_bytes: u16,
    /// synthetic: an explicit CHECKPOINT every this many transactions.
    pub checkpoint_every_txns: u32,
    /// One transaction starts every this many milliseconds.
    pub txn_interval_ms: u64,
    /// The client reads a page through GetPage@LSN every this many milliseconds.
    pub read_interval_ms: u64,
}

/// Which faults the plan may schedule, and how hard. A `*_per_s` rate is a mean over the fault
/// window; each seed's swarm choice may turn a kind off or scale it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    pub safekeeper_crashes_per_s: f64,
    pub compute_crashes_per_s: f64,
    pub partitions_per_s: f64,
    /// Election storms: bursts in which the compute is elected, reaches only some safekeepers,
    /// and crashes, several times in a row, leaving acceptors on divergent branches.
    pub election_storms_per_s: f64,
    pub pageserver_crashes_per_s: f64,
    /// Whole-disk losses of a pageserver (it rebuilds from the object store and safekeepers).
    pub pageserver_disk_losses_per_s: f64,
    /// Windows in which the object store is down.
    pub object_store_outages_per_s: f64,
    /// Bit flips in a pageserver's durable files.
    pub bitrot_per_s: f64,
    /// Largest packet loss rate a loss window sets.
    pub max_packet_loss: f64,
    /// Chance that an unsynced sector survives a crash (torn writes).
    pub torn_write_probability: f64,
    /// Chance that the RPC layer sends a message twice.
    pub duplicate_probability: f64,
    /// Let the plan start a second compute while the first is cut off but alive.
    pub second_compute: bool,
    /// The control plane replaces a compute cut off from a majority of safekeepers for longer
    /// than this (0: never), once a run, so that leaders change where partitions strike.
    pub replace_cut_off_compute_after_ms: u64,
    /// Let the plan lose one safekeeper for good (a minority: the rest must stay live, and
    /// pageservers must stream from the others).
    pub safekeeper_loss: bool,
    /// Chance that a crash keeps some unsynced directory operations (a rename that landed
    /// while the data it names did not); a separate knob from torn sectors.
    pub dir_land_probability: f64,
    /// Sector ranges that read back EIO (for a time or until rewritten), on any node's disk.
    pub read_errors_per_s: f64,
    /// fsyncs that fail with EIO and drop the file's dirty data.
    pub fsync_failures_per_s: f64,
    /// Windows in which a node's disk is full (ENOSPC).
    pub disk_full_per_s: f64,
    /// Latency spikes on a node's disk (fsync and read).
    pub slow_disks_per_s: f64,
    /// Latency spikes on one direction of a link.
    pub slow_links_per_s: f64,
    /// Cuts of pageserver links: to a safekeeper, to the object store, from a compute.
    pub link_cuts_per_s: f64,
    /// Windows in which the object store answers late (often past the client's timeout).
    pub slow_object_store_per_s: f64,
    /// Bit flips in a safekeeper's durable files (its WAL and control file).
    pub safekeeper_bitrot_per_s: f64,
    /// Let the plan lose one safekeeper's disk (never together with `safekeeper_loss`).
    pub safekeeper_disk_loss: bool,
    /// Let each seed choose which of the above are on (swarm testing).
    pub swarm: bool,
    /// Share of seeds that run with BUGGIFY points on (0 to 1).
    pub buggify_share: f64,
}

/// The cost model: what work costs on the simulated clock, so that commits/s and GetPage
/// latency are deterministic per seed and comparable across machines. Off in the fault
/// scenarios (`enabled = false`: the protocol's raw timing, which the fuzzing corpus pins);
/// experiments turn it on. Defaults and where they come from:
///
/// - `vcpus = 4`, `cpu_per_txn_us = 250`: a pgbench TPC-B transaction costs Postgres about
///   200-300 us of CPU (about 4,000 tps per core on current x86 servers in published pgbench
///   runs, e.g. the PostgreSQL wiki's and Percona's pgbench results); assumed, tunable.
/// - `cpu_ns_per_wal_byte = 1.0`: WAL insertion copies each byte into the WAL buffers and
///   CRC32Cs it; memcpy plus hardware CRC32C run at several GB/s, WAL insertion locking at
///   about 1 GB/s per backend: 1 ns per byte (assumed).
/// - `link_mbit_per_s = 10000`: a 10 Gbit/s cloud network interface (AWS's common "up to 10
///   Gigabit" instance network). The WAL crosses it once per safekeeper.
/// - `network_latency_us = 1000..1500`: madsim cannot sleep less than 1 ms, so one-way latency
///   is 1-1.5 ms (a cloud region's is 0.1-0.5 ms): commit latency here is 2-3 ms higher than
///   in a datacenter, which closed-loop clients make up for by their number.
/// - `safekeeper_fsync_us = 1000`, `safekeeper_disk_mb_per_s = 1000`: an fsync on cloud
///   block storage takes about 1 ms (AWS EBS gp3: "single-digit millisecond" latency; local
///   NVMe is faster, but madsim's 1 ms floor binds anyway); 1 GB/s of sequential writes.
/// - `walredo_fixed_us = 27`, `walredo_per_record_us = 0.5`: Neon's public walredo benchmark
///   (`pageserver/benches/bench_walredo.rs`): about 25-30 us per request to the walredo
///   process and about 0.5 us per record applied.
/// - `layer_visit_us = 20`, `layer_read_mb_per_s = 2000`: per layer file a read visits (an
///   index lookup in a file in the page cache or on local NVMe, assumed) and per byte read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostConfig {
    pub enabled: bool,
    pub vcpus: usize,
    pub cpu_per_txn_us: f64,
    pub cpu_ns_per_wal_byte: f64,
    pub link_mbit_per_s: f64,
    pub network_latency_us: [u64; 2],
    pub safekeeper_fsync_us: u64,
    pub safekeeper_disk_mb_per_s: f64,
    pub walredo_fixed_us: f64,
    pub walredo_per_record_us: f64,
    pub layer_visit_us: f64,
    pub layer_read_mb_per_s: f64,
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            enabled: false,
            vcpus: 4,
            cpu_per_txn_us: 250.0,
            cpu_ns_per_wal_byte: 1.0,
            link_mbit_per_s: 10_000.0,
            network_latency_us: [1000, 1500],
            safekeeper_fsync_us: 1000,
            safekeeper_disk_mb_per_s: 1000.0,
            walredo_fixed_us: 27.0,
            walredo_per_record_us: 0.5,
            layer_visit_us: 20.0,
            layer_read_mb_per_s: 2000.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimingConfig {
    pub proposer_tick_ms: u64,
    pub election_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            safekeepers: 3,
            pageservers: 1,
            image_policy: ImagePolicy::PerPageRecords(8),
            checkpoint_distance_kb: 32,
            fault_window_ms: 8_000,
            liveness_window_ms: 4_000,
            full_page_writes: false,
            checkpoint_timeout_ms: 300_000,
            max_wal_size_mb: 1024,
            wal_segment_kb: 64,
            swarm: ConfigSwarm::default(),
            workload: WorkloadConfig::default(),
            cost: CostConfig::default(),
            faults: FaultConfig::default(),
            disk: DiskConfig::default(),
            timing: TimingConfig::default(),
        }
    }
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            kind: WorkloadKind::Synthetic,
            clients: 0,
            scale: 1,
            account_skew: 0.0,
            trace: None,
            hot_read_page: None,
            hot_read_share: 0.0,
            pages: 64,
            hot_pages: 4,
            hot_share: 0.8,
            max_deltas_per_txn: 3,
            max_delta_bytes: 64,
            checkpoint_every_txns: 100,
            txn_interval_ms: 5,
            read_interval_ms: 20,
        }
    }
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            safekeeper_crashes_per_s: 0.0,
            compute_crashes_per_s: 0.0,
            partitions_per_s: 0.0,
            election_storms_per_s: 0.0,
            pageserver_crashes_per_s: 0.0,
            pageserver_disk_losses_per_s: 0.0,
            object_store_outages_per_s: 0.0,
            bitrot_per_s: 0.0,
            max_packet_loss: 0.0,
            torn_write_probability: 0.0,
            duplicate_probability: 0.0,
            second_compute: false,
            replace_cut_off_compute_after_ms: 0,
            safekeeper_loss: false,
            dir_land_probability: 0.0,
            read_errors_per_s: 0.0,
            fsync_failures_per_s: 0.0,
            disk_full_per_s: 0.0,
            slow_disks_per_s: 0.0,
            slow_links_per_s: 0.0,
            link_cuts_per_s: 0.0,
            slow_object_store_per_s: 0.0,
            safekeeper_bitrot_per_s: 0.0,
            safekeeper_disk_loss: false,
            swarm: false,
            buggify_share: 0.0,
        }
    }
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig {
            proposer_tick_ms: 20,
            election_timeout_ms: 400,
        }
    }
}

/// A TOML error as one line: the file, the line and column, the key it is about and what is
/// wrong (the toml crate's own text spreads that over several lines).
pub fn toml_error(
    what: &str,
    path: &std::path::Path,
    text: &str,
    e: &toml::de::Error,
) -> anyhow::Error {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return anyhow::anyhow!("{what} {}: {message}", path.display());
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let key = key_at(text, line)
        .map(|k| format!(", key {k}"))
        .unwrap_or_default();
    anyhow::anyhow!(
        "{what} {} line {line} column {column}{key}: {message}",
        path.display()
    )
}

/// The dotted key a TOML line sets (`workload.pages`), from the table header above it.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    let (key, _) = here.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = lines[..line - 1].iter().rev().find_map(|l| {
        let l = l.trim();
        (l.starts_with('[') && l.ends_with(']')).then(|| l.trim_matches(['[', ']']).trim())
    });
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

impl Config {
    /// Reads a TOML config file; errors name the file and what is wrong.
    pub fn from_file(path: &std::path::Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).map_err(|e| toml_error("config file", path, &text, &e))?;
        config
            .validate()
            .with_context(|| format!("config file {}", path.display()))?;
        Ok(config)
    }

    /// Rejects configurations no run can have, naming what is allowed.
    fn validate_swarm(&self, segment_ok: &dyn Fn(u64) -> bool) -> Result<()> {
        let s = &self.swarm;
        let share = |v: f64| (0.0..=1.0).contains(&v);
        if !share(s.full_page_writes_share) || !share(s.two_pageservers_share) {
            bail!(
                "swarm: full_page_writes_share and two_pageservers_share must be between 0 and 1"
            );
        }
        let [lo, hi] = s.image_threshold;
        if lo == 0 || lo > hi || hi > 100_000 {
            bail!("swarm.image_threshold = [{lo}, {hi}]: need 1 <= min <= max <= 100000");
        }
        let [lo, hi] = s.checkpoint_distance_kb;
        if lo < 4 || lo > hi || hi > 1_048_576 {
            bail!("swarm.checkpoint_distance_kb = [{lo}, {hi}]: need 4 <= min <= max <= 1048576");
        }
        if s.wal_segment_kb.is_empty() || !s.wal_segment_kb.iter().all(|kb| segment_ok(*kb)) {
            bail!("swarm.wal_segment_kb: one or more powers of two from 4 to 16384");
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        if !matches!(self.safekeepers, 3 | 5) {
            bail!(
                "safekeepers = {}: a cluster has 3 or 5 safekeepers",
                self.safekeepers
            );
        }
        if !matches!(self.pageservers, 1 | 2) {
            bail!(
                "pageservers = {}: a cluster has 1 or 2 pageservers",
                self.pageservers
            );
        }
        let segment_ok = |kb: u64| kb.is_power_of_two() && (4..=16_384).contains(&kb);
        if !segment_ok(self.wal_segment_kb) {
            bail!(
                "wal_segment_kb = {}: must be a power of two from 4 to 16384",
                self.wal_segment_kb
            );
        }
        self.validate_swarm(&segment_ok)?;
        if !(4..=1_048_576).contains(&self.checkpoint_distance_kb) {
            bail!(
                "checkpoint_distance_kb = {}: must be 4 to 1048576",
                self.checkpoint_distance_kb
            );
        }
        // Postgres's minimum timeout is 30 s; experiments scale time down to emulate large
        // databases in short runs, so lakesim allows 10 ms.
        if self.checkpoint_timeout_ms < 10 || self.max_wal_size_mb == 0 {
            bail!("checkpoint_timeout_ms must be at least 10 and max_wal_size_mb at least 1");
        }
        self.validate_workload()?;
        self.validate_cost()?;
        if self.workload.read_interval_ms == 0 {
            bail!("workload.read_interval_ms must be at least 1");
        }
        let w = &self.workload;
        if w.pages > 1_000_000 || w.max_deltas_per_txn > 1_000 {
            bail!(
                "workload: pages at most 1000000 and max_deltas_per_txn at most 1000 (got {} and {})",
                w.pages,
                w.max_deltas_per_txn
            );
        }
        if w.pages == 0 || w.hot_pages == 0 || w.hot_pages > w.pages {
            bail!(
                "workload: need 1 <= hot_pages <= pages (got {} and {})",
                w.hot_pages,
                w.pages
            );
        }
        if !(0.0..=1.0).contains(&w.hot_share) {
            bail!(
                "workload.hot_share = {}: must be between 0 and 1",
                w.hot_share
            );
        }
        if w.max_deltas_per_txn == 0 || w.max_delta_bytes == 0 || w.max_delta_bytes > 4096 {
            bail!("workload: max_deltas_per_txn >= 1 and 1 <= max_delta_bytes <= 4096");
        }
        if w.txn_interval_ms == 0 || w.checkpoint_every_txns == 0 {
            bail!("workload: txn_interval_ms and checkpoint_every_txns must be at least 1");
        }
        if !matches!(self.disk.sector_size, 512 | 4096) {
            bail!(
                "disk.sector_size = {}: must be 512 or 4096",
                self.disk.sector_size
            );
        }
        let f = &self.faults;
        for (name, p) in [
            ("faults.max_packet_loss", f.max_packet_loss),
            ("faults.torn_write_probability", f.torn_write_probability),
            ("faults.duplicate_probability", f.duplicate_probability),
            ("faults.dir_land_probability", f.dir_land_probability),
            ("disk.land_probability", self.disk.land_probability),
            ("faults.buggify_share", f.buggify_share),
        ] {
            if !(0.0..=1.0).contains(&p) {
                bail!("{name} = {p}: must be between 0 and 1");
            }
        }
        for (name, r) in [
            (
                "faults.safekeeper_crashes_per_s",
                f.safekeeper_crashes_per_s,
            ),
            ("faults.compute_crashes_per_s", f.compute_crashes_per_s),
            ("faults.partitions_per_s", f.partitions_per_s),
            ("faults.election_storms_per_s", f.election_storms_per_s),
            (
                "faults.pageserver_crashes_per_s",
                f.pageserver_crashes_per_s,
            ),
            (
                "faults.pageserver_disk_losses_per_s",
                f.pageserver_disk_losses_per_s,
            ),
            (
                "faults.object_store_outages_per_s",
                f.object_store_outages_per_s,
            ),
            ("faults.bitrot_per_s", f.bitrot_per_s),
            ("faults.read_errors_per_s", f.read_errors_per_s),
            ("faults.fsync_failures_per_s", f.fsync_failures_per_s),
            ("faults.disk_full_per_s", f.disk_full_per_s),
            ("faults.slow_disks_per_s", f.slow_disks_per_s),
            ("faults.slow_links_per_s", f.slow_links_per_s),
            ("faults.link_cuts_per_s", f.link_cuts_per_s),
            ("faults.slow_object_store_per_s", f.slow_object_store_per_s),
            ("faults.safekeeper_bitrot_per_s", f.safekeeper_bitrot_per_s),
        ] {
            if !(0.0..=20.0).contains(&r) {
                bail!("{name} = {r}: must be between 0 and 20");
            }
        }
        if self.fault_window_ms > 600_000 {
            bail!(
                "fault_window_ms = {}: must be 0 to 600000",
                self.fault_window_ms
            );
        }
        if !(1_000..=600_000).contains(&self.liveness_window_ms) {
            bail!(
                "liveness_window_ms = {}: must be 1000 to 600000",
                self.liveness_window_ms
            );
        }
        if self.timing.proposer_tick_ms == 0
            || self.timing.election_timeout_ms < 2 * self.timing.proposer_tick_ms
        {
            bail!("timing: proposer_tick_ms >= 1 and election_timeout_ms >= 2 * proposer_tick_ms");
        }
        self.validate_can_pass()
    }

    /// Settings with which no run could pass: the liveness window must leave room for the
    /// commits and the read its checks ask for, and the workload must fit in memory.
    fn validate_can_pass(&self) -> Result<()> {
        let live = self.liveness_window_ms;
        let w = &self.workload;
        let acks = crate::checker::MIN_ACKS_AFTER_HEAL as u64;
        if w.clients == 0 && w.txn_interval_ms > live / acks {
            bail!(
                "workload.txn_interval_ms = {}: at most liveness_window_ms / {acks} = {} (the liveness check wants {acks} commits after the faults heal, and open loop starts one per interval)",
                w.txn_interval_ms,
                live / acks
            );
        }
        if w.read_interval_ms > live / 2 {
            bail!(
                "workload.read_interval_ms = {}: at most liveness_window_ms / 2 = {} (a GetPage must be answered after the faults heal)",
                w.read_interval_ms,
                live / 2
            );
        }
        if self.cost.enabled && self.cost.safekeeper_fsync_us > live * 1000 / 2 {
            bail!(
                "cost.safekeeper_fsync_us = {}: at most liveness_window_ms * 1000 / 2 = {} (each commit waits for a safekeeper fsync, in the liveness window)",
                self.cost.safekeeper_fsync_us,
                live * 1000 / 2
            );
        }
        let txns = (self.fault_window_ms + live) / w.txn_interval_ms;
        if w.kind == WorkloadKind::Synthetic && txns > MAX_PLANNED_TXNS {
            bail!(
                "(fault_window_ms + liveness_window_ms) / workload.txn_interval_ms = {txns} transactions: at most {MAX_PLANNED_TXNS} (a synthetic workload is planned in full before the run)"
            );
        }
        Ok(())
    }
}

impl Config {
    fn validate_workload(&self) -> Result<()> {
        let w = &self.workload;
        if w.clients > 4096 {
            bail!(
                "workload.clients = {}: must be 0 (open loop) to 4096",
                w.clients
            );
        }
        if !(1..=100).contains(&w.scale) {
            bail!("workload.scale = {}: must be 1 to 100", w.scale);
        }
        if !(0.0..=100.0).contains(&w.account_skew) {
            bail!(
                "workload.account_skew = {}: must be 0 (uniform) to 100",
                w.account_skew
            );
        }
        if !(0.0..=1.0).contains(&w.hot_read_share) {
            bail!(
                "workload.hot_read_share = {}: must be between 0 and 1",
                w.hot_read_share
            );
        }
        if w.kind == WorkloadKind::PgTrace && w.trace.is_none() {
            bail!("workload.kind = \"pg-trace\" needs workload.trace = \"FILE\" (a trace from lakesim import-wal)");
        }
        Ok(())
    }

    fn validate_cost(&self) -> Result<()> {
        let c = &self.cost;
        if !(1..=256).contains(&c.vcpus) {
            bail!("cost.vcpus = {}: must be 1 to 256", c.vcpus);
        }
        let [lo, hi] = c.network_latency_us;
        if lo < 1000 || hi < lo || hi > 1_000_000 {
            bail!("cost.network_latency_us = [{lo}, {hi}]: need 1000 <= low <= high <= 1000000 (madsim cannot deliver in under 1 ms)");
        }
        for (name, v) in [
            ("cost.cpu_per_txn_us", c.cpu_per_txn_us),
            ("cost.cpu_ns_per_wal_byte", c.cpu_ns_per_wal_byte),
            ("cost.walredo_fixed_us", c.walredo_fixed_us),
            ("cost.walredo_per_record_us", c.walredo_per_record_us),
            ("cost.layer_visit_us", c.layer_visit_us),
        ] {
            if !(0.0..=1e6).contains(&v) {
                bail!("{name} = {v}: must be 0 to 1000000");
            }
        }
        for (name, v) in [
            ("cost.link_mbit_per_s", c.link_mbit_per_s),
            ("cost.safekeeper_disk_mb_per_s", c.safekeeper_disk_mb_per_s),
            ("cost.layer_read_mb_per_s", c.layer_read_mb_per_s),
        ] {
            if !(0.1..=1e7).contains(&v) {
                bail!("{name} = {v}: must be 0.1 to 10000000");
            }
        }
        Ok(())
    }

    /// The checkpoint trigger by volume Postgres derives from `max_wal_size`.
    pub fn checkpoint_wal_bytes(&self) -> u64 {
        (self.max_wal_size_mb as f64 * 1024.0 * 1024.0 / 1.9) as u64
    }
}
