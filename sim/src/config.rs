//! The run configuration: cluster shape, workload, faults and timing. Plain data, so a scenario
//! is just a named value of it and `--config FILE` is TOML of the same shape.

use anyhow::{bail, Context, Result};
use lakesim_faults::DiskConfig;
use serde::{Deserialize, Serialize};

/// Everything that shapes a run besides the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Safekeepers: 3 or 5.
    pub safekeepers: usize,
    /// Pageservers: 1 or 2, each ingesting on its own.
    pub pageservers: usize,
    /// A pageserver writes an image of a page once its delta chain is longer than this.
    pub image_creation_threshold: usize,
    /// Simulated time the faults may act.
    pub fault_window_ms: u64,
    /// Simulated time after the faults heal in which commits must be acknowledged again.
    pub liveness_window_ms: u64,
    /// Log a full-page image on the first touch of a page after a checkpoint.
    pub full_page_writes: bool,
    pub workload: WorkloadConfig,
    pub faults: FaultConfig,
    pub disk: DiskConfig,
    pub timing: TimingConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadConfig {
    /// Pages the workload writes.
    pub pages: u32,
    /// The first `hot_pages` pages take `hot_share` of the writes.
    pub hot_pages: u32,
    pub hot_share: f64,
    /// Page deltas per transaction: 1 to this.
    pub max_deltas_per_txn: u32,
    /// Bytes per delta: 1 to this.
    pub max_delta_bytes: u16,
    /// A checkpoint every this many transactions.
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
    /// Let each seed choose which of the above are on (swarm testing).
    pub swarm: bool,
    /// Share of seeds that run with BUGGIFY points on (0 to 1).
    pub buggify_share: f64,
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
            image_creation_threshold: 8,
            fault_window_ms: 8_000,
            liveness_window_ms: 4_000,
            full_page_writes: false,
            workload: WorkloadConfig::default(),
            faults: FaultConfig::default(),
            disk: DiskConfig::default(),
            timing: TimingConfig::default(),
        }
    }
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
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

impl Config {
    /// Reads a TOML config file; errors name the file and what is wrong.
    pub fn from_file(path: &std::path::Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let config: Config = toml::from_str(&text).map_err(|e| {
            let msg = e.message().replace('\n', " ");
            anyhow::anyhow!("config file {}: {msg}", path.display())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects configurations no run can have, naming what is allowed.
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
        if !(1..=1000).contains(&self.image_creation_threshold) {
            bail!(
                "image_creation_threshold = {}: must be 1 to 1000",
                self.image_creation_threshold
            );
        }
        if self.workload.read_interval_ms == 0 {
            bail!("workload.read_interval_ms must be at least 1");
        }
        let w = &self.workload;
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
        ] {
            if !(0.0..=20.0).contains(&r) {
                bail!("{name} = {r}: must be between 0 and 20");
            }
        }
        if self.fault_window_ms > 600_000 || self.liveness_window_ms < 1_000 {
            bail!("fault_window_ms must be at most 600000 and liveness_window_ms at least 1000");
        }
        if self.timing.proposer_tick_ms == 0
            || self.timing.election_timeout_ms < 2 * self.timing.proposer_tick_ms
        {
            bail!("timing: proposer_tick_ms >= 1 and election_timeout_ms >= 2 * proposer_tick_ms");
        }
        Ok(())
    }
}
