//! Named scenarios: presets of [`Config`] that `lakesim list` shows.

use crate::config::Config;
use anyhow::{bail, Result};

/// One scenario: a name, what it exercises, and its config.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub build: fn() -> Config,
}

/// The scenario `lakesim run` uses when none is named.
pub const DEFAULT: &str = "storm";

pub const ALL: &[Scenario] = &[
    Scenario {
        name: "calm",
        about: "no faults: the protocol's happy path",
        build: calm,
    },
    Scenario {
        name: "safekeeper-crashes",
        about: "safekeepers crash and restart from their disks",
        build: safekeeper_crashes,
    },
    Scenario {
        name: "partitions",
        about: "isolated nodes, cut links, minority splits, packet loss, duplicates; a compute cut off for 0.5 s is replaced",
        build: partitions,
    },
    Scenario {
        name: "torn-writes",
        about: "safekeeper and compute crashes that tear unsynced sectors and keep unsynced renames whose data did not land",
        build: torn_writes,
    },
    Scenario {
        name: "storm",
        about: "every fault at once, swarm-chosen per seed, with compute crashes",
        build: storm,
    },
    Scenario {
        name: "storm-5",
        about: "storm with 5 safekeepers",
        build: storm_5,
    },
    Scenario {
        name: "pageserver-crashes",
        about: "pageservers crash (tearing unsynced layer writes) and restart from their layers",
        build: pageserver_crashes,
    },
    Scenario {
        name: "pageserver-disk-loss",
        about: "a pageserver loses its whole disk and rebuilds from the object store",
        build: pageserver_disk_loss,
    },
    Scenario {
        name: "object-store-outage",
        about: "the object store goes down while pageservers upload and restart",
        build: object_store_outage,
    },
    Scenario {
        name: "disk-errors",
        about: "read errors, failed fsyncs, full disks and slow disks on safekeepers and pageservers, with crashes",
        build: disk_errors,
    },
    Scenario {
        name: "slow-network",
        about: "latency spikes on links, cuts of every pageserver link, a slow object store, partitions",
        build: slow_network,
    },
    Scenario {
        name: "safekeeper-disk-loss",
        about: "a safekeeper loses its disk (it stays out), bits rot in safekeepers' WAL and control files",
        build: safekeeper_disk_loss,
    },
    Scenario {
        name: "bitrot",
        about: "bits flip in durable layer files; pageservers must detect it by checksum",
        build: bitrot,
    },
];

/// True when a run of `config` can see the leading compute change: it crashes, a second one
/// starts, election storms run, or the control plane replaces a cut-off one.
pub fn leaders_change(config: &Config) -> bool {
    let f = &config.faults;
    f.compute_crashes_per_s > 0.0
        || f.second_compute
        || f.election_storms_per_s > 0.0
        || f.replace_cut_off_compute_after_ms > 0
}

pub fn find(name: &str) -> Result<Config> {
    match ALL.iter().find(|s| s.name == name) {
        Some(s) => Ok((s.build)()),
        None => {
            let names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
            bail!(
                "unknown scenario '{name}'; known scenarios: {}",
                names.join(", ")
            )
        }
    }
}

fn calm() -> Config {
    Config::default()
}

fn safekeeper_crashes() -> Config {
    let mut c = Config::default();
    c.faults.safekeeper_crashes_per_s = 1.0;
    c
}

fn partitions() -> Config {
    let mut c = Config::default();
    c.faults.partitions_per_s = 1.0;
    c.faults.max_packet_loss = 0.2;
    c.faults.duplicate_probability = 0.05;
    c.faults.replace_cut_off_compute_after_ms = 500;
    c
}

fn torn_writes() -> Config {
    let mut c = Config::default();
    c.faults.safekeeper_crashes_per_s = 1.5;
    c.faults.compute_crashes_per_s = 0.5;
    c.faults.torn_write_probability = 0.5;
    c.faults.dir_land_probability = 0.5;
    c.disk.sector_size = 512;
    c
}

fn disk_errors() -> Config {
    let mut c = Config::default();
    c.faults.read_errors_per_s = 1.0;
    c.faults.fsync_failures_per_s = 0.5;
    c.faults.disk_full_per_s = 0.3;
    c.faults.slow_disks_per_s = 0.5;
    c.faults.safekeeper_crashes_per_s = 0.5;
    c.faults.pageserver_crashes_per_s = 0.3;
    c.faults.torn_write_probability = 0.3;
    c.faults.dir_land_probability = 0.5;
    c
}

fn slow_network() -> Config {
    let mut c = Config::default();
    c.faults.slow_links_per_s = 2.0;
    c.faults.link_cuts_per_s = 1.0;
    c.faults.slow_object_store_per_s = 0.5;
    c.faults.partitions_per_s = 0.5;
    c.faults.max_packet_loss = 0.1;
    c.faults.duplicate_probability = 0.05;
    c.faults.pageserver_crashes_per_s = 0.2;
    c
}

fn safekeeper_disk_loss() -> Config {
    let mut c = Config::default();
    c.faults.safekeeper_disk_loss = true;
    c.faults.safekeeper_bitrot_per_s = 1.0;
    c.faults.safekeeper_crashes_per_s = 1.0;
    c.faults.compute_crashes_per_s = 0.3;
    c
}

fn storm() -> Config {
    Config {
        faults: crate::config::FaultConfig {
            safekeeper_crashes_per_s: 1.0,
            compute_crashes_per_s: 0.6,
            partitions_per_s: 1.0,
            election_storms_per_s: 2.0,
            pageserver_crashes_per_s: 0.3,
            pageserver_disk_losses_per_s: 0.1,
            object_store_outages_per_s: 0.2,
            bitrot_per_s: 0.3,
            max_packet_loss: 0.2,
            torn_write_probability: 0.5,
            duplicate_probability: 0.05,
            second_compute: true,
            replace_cut_off_compute_after_ms: 0,
            safekeeper_loss: true,
            swarm: true,
            buggify_share: 0.75,
            dir_land_probability: 0.5,
            read_errors_per_s: 0.3,
            fsync_failures_per_s: 0.2,
            disk_full_per_s: 0.15,
            slow_disks_per_s: 0.3,
            slow_links_per_s: 0.5,
            link_cuts_per_s: 0.3,
            slow_object_store_per_s: 0.15,
            safekeeper_bitrot_per_s: 0.2,
            safekeeper_disk_loss: true,
        },
        swarm: crate::config::ConfigSwarm {
            enabled: true,
            ..Default::default()
        },
        ..Config::default()
    }
}

fn storm_5() -> Config {
    let mut c = storm();
    c.safekeepers = 5;
    c
}

fn pageserver_crashes() -> Config {
    let mut c = Config::default();
    c.faults.pageserver_crashes_per_s = 1.0;
    c.faults.torn_write_probability = 0.5;
    c
}

fn pageserver_disk_loss() -> Config {
    let mut c = Config::default();
    c.faults.pageserver_disk_losses_per_s = 0.4;
    c.faults.pageserver_crashes_per_s = 0.3;
    c
}

fn object_store_outage() -> Config {
    let mut c = Config::default();
    c.faults.object_store_outages_per_s = 0.5;
    c.faults.pageserver_crashes_per_s = 0.5;
    c.faults.pageserver_disk_losses_per_s = 0.1;
    c
}

fn bitrot() -> Config {
    let mut c = Config::default();
    c.faults.bitrot_per_s = 2.0;
    c.faults.pageserver_crashes_per_s = 1.0;
    c
}
