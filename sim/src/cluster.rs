//! The cluster: madsim nodes for the safekeepers and computes, their disks, and the fault plan
//! applied to them. This is the only place that kills, restarts or partitions nodes.

use crate::checker::Checker;
use crate::config::Config;
use crate::plan::{
    pageserver_ids, safekeeper_ids, FaultAction, FaultEvent, Plan, Role, FIRST_COMPUTE,
    OBJECT_STORE, STREAM_DISK,
};
use lakesim_faults::{Disk, DiskConfig, Links, Trace};
use lakesim_nodes::bugs::BugSet;
use lakesim_nodes::compute::walproposer::{ComputeCost, ProposerTiming};
use lakesim_nodes::compute::workload::{Client, WorkSource};
use lakesim_nodes::compute::{self, ComputeConfig};
use lakesim_nodes::net::ip_of;
use lakesim_nodes::object_store::{self, Bucket, ObjectStoreConfig};
use lakesim_nodes::observe::Observer;
use lakesim_nodes::pageserver::remote::RemotePrefix;
use lakesim_nodes::pageserver::{self, PageserverConfig, PageserverCost};
use lakesim_nodes::safekeeper::wal_store::SegmentSize;
use lakesim_nodes::safekeeper::{self, SafekeeperConfig};
use lakesim_nodes::{NodeId, PageId};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Every madsim node a run created, shared with the runner so that it can shut them down even
/// after a panic unwound the cluster.
pub type NodeRegistry = Arc<std::sync::Mutex<Vec<madsim::task::NodeId>>>;

pub struct Cluster {
    registry: NodeRegistry,
    checker: Arc<Checker>,
    handle: Handle,
    trace: Trace,
    nodes: BTreeMap<u32, NodeHandle>,
    down: BTreeSet<u32>,
    /// Nodes lost for good: nothing restarts them.
    retired: BTreeSet<u32>,
    /// Safekeepers whose disk was lost.
    disk_lost: BTreeSet<u32>,
    disks: BTreeMap<u32, Disk>,
    links: Links,
    compute_template: ComputeConfig,
}

/// What outlives the nodes' processes and the harness can read: the disks, the object store's
/// bucket, and the client's work.
pub struct World {
    pub disks: BTreeMap<u32, Disk>,
    pub bucket: Bucket,
    pub work: Box<dyn WorkSource>,
    /// The network's fault state (duplication, latency spikes), shared by every node's interface.
    pub links: Links,
}

/// The disks of a run, made before the checker so that it can read committed WAL.
pub fn make_disks(seed: u64, config: &Config, plan: &Plan, trace: &Trace) -> BTreeMap<u32, Disk> {
    let disk_config = DiskConfig {
        land_probability: plan
            .faults_chosen
            .torn_write_probability
            .max(config.disk.land_probability),
        dir_land_probability: plan
            .faults_chosen
            .dir_land_probability
            .max(config.disk.dir_land_probability),
        ..config.disk.clone()
    };
    // With the cost model on, safekeeper fsyncs take its latency and bandwidth.
    let safekeeper_disk = match config.cost.enabled {
        true => DiskConfig {
            fsync_latency_us: config.cost.safekeeper_fsync_us,
            sync_bytes_per_s: config.cost.safekeeper_disk_mb_per_s * 1e6,
            ..disk_config.clone()
        },
        false => disk_config.clone(),
    };
    let sks = safekeeper_ids(config.safekeepers);
    let mut ids = sks.clone();
    ids.extend(pageserver_ids(config.pageservers));
    ids.into_iter()
        .map(|id| {
            let disk = Disk::new(
                id,
                match sks.contains(&id) {
                    true => safekeeper_disk.clone(),
                    false => disk_config.clone(),
                },
                seed ^ STREAM_DISK ^ u64::from(id),
                Some(trace.clone()),
            );
            (id, disk)
        })
        .collect()
}

impl Cluster {
    /// Starts every safekeeper, the object store, every pageserver and the first compute.
    pub fn start(
        config: &Config,
        plan: &Plan,
        bugs: &BugSet,
        trace: Trace,
        world: World,
        checker: Arc<Checker>,
        registry: NodeRegistry,
    ) -> Cluster {
        let World {
            disks,
            bucket,
            work,
            links,
        } = world;
        let observer: Arc<dyn Observer> = checker.clone();
        let handle = Handle::current();
        let mut nodes = BTreeMap::new();
        let buggify = plan.faults_chosen.buggify;
        let sks: Vec<NodeId> = safekeeper_ids(config.safekeepers)
            .into_iter()
            .map(NodeId)
            .collect();
        let pss: Vec<NodeId> = pageserver_ids(config.pageservers)
            .into_iter()
            .map(NodeId)
            .collect();
        for id in sks.iter().map(|n| n.0) {
            let disk = &disks[&id];
            let cfg = SafekeeperConfig {
                id: NodeId(id),
                disk: disk.clone(),
                bugs: bugs.clone(),
                observer: observer.clone(),
                links: links.clone(),
                buggify: plan.faults_chosen.buggify,
                pageservers: pss.clone(),
                wal_segment_size: segment_size(config),
            };
            let node = handle
                .create_node()
                .name(Role::of(id).name())
                .ip(ip_of(NodeId(id)))
                .init(move || safekeeper::run(cfg.clone()))
                .build();
            registry.lock().unwrap().push(node.id());
            nodes.insert(id, node);
        }
        let store_cfg = ObjectStoreConfig {
            id: NodeId(OBJECT_STORE),
            bucket: bucket.clone(),
            observer: observer.clone(),
            links: links.clone(),
            bugs: bugs.clone(),
        };
        let store = handle
            .create_node()
            .name(Role::ObjectStore.name())
            .ip(ip_of(NodeId(OBJECT_STORE)))
            .init(move || object_store::run(store_cfg.clone()))
            .build();
        registry.lock().unwrap().push(store.id());
        nodes.insert(OBJECT_STORE, store);
        for &id in &pss {
            let cfg = PageserverConfig {
                id,
                disk: disks[&id.0].clone(),
                safekeepers: sks.clone(),
                object_store: NodeId(OBJECT_STORE),
                bugs: bugs.clone(),
                observer: observer.clone(),
                links: links.clone(),
                image_policy: config.image_policy,
                checkpoint_distance_bytes: config.checkpoint_distance_kb as usize * 1024,
                cost: pageserver_cost(config),
                buggify,
                remote_prefix: remote_prefix(id),
                generations: Default::default(),
            };
            let node = handle
                .create_node()
                .name(Role::of(id.0).name())
                .ip(ip_of(id))
                .init(move || pageserver::run(cfg.clone()))
                .build();
            registry.lock().unwrap().push(node.id());
            nodes.insert(id.0, node);
        }
        let compute_template = ComputeConfig {
            id: NodeId(FIRST_COMPUTE),
            safekeepers: sks,
            pageservers: pss,
            read_interval: Duration::from_millis(config.workload.read_interval_ms),
            bugs: bugs.clone(),
            observer,
            links: links.clone(),
            full_page_writes: config.full_page_writes,
            timing: ProposerTiming {
                tick: Duration::from_millis(config.timing.proposer_tick_ms),
                election_timeout: Duration::from_millis(config.timing.election_timeout_ms),
                txn_interval: Duration::from_millis(config.workload.txn_interval_ms),
            },
            client: Arc::new(Client::new(work)),
            buggify: plan.faults_chosen.buggify,
            hot_read: config
                .workload
                .hot_read_page
                .map(|p| (PageId(p), config.workload.hot_read_share)),
            cost: compute_cost(config),
        };
        let mut cluster = Cluster {
            registry,
            checker,
            handle,
            trace,
            nodes,
            down: BTreeSet::new(),
            retired: BTreeSet::new(),
            disk_lost: BTreeSet::new(),
            disks,
            links,
            compute_template,
        };
        cluster.start_compute(FIRST_COMPUTE);
        cluster
    }

    fn start_compute(&mut self, id: u32) {
        if self.nodes.contains_key(&id) {
            return;
        }
        let cfg = ComputeConfig {
            id: NodeId(id),
            ..self.compute_template.clone()
        };
        let node = self
            .handle
            .create_node()
            .name(Role::of(id).name())
            .ip(ip_of(NodeId(id)))
            .init(move || compute::run(cfg.clone()))
            .build();
        self.registry.lock().unwrap().push(node.id());
        self.nodes.insert(id, node);
        self.trace.record(id, "start-compute", 0, 0);
    }

    /// Whether a safekeeper was lost for good: retired, or back on an empty disk (it then
    /// stays out of the quorum).
    pub fn safekeeper_retired(&self) -> bool {
        !self.retired.is_empty() || !self.disk_lost.is_empty()
    }

    fn sim_id(&self, node: u32) -> Option<madsim::task::NodeId> {
        self.nodes.get(&node).map(|n| n.id())
    }

    /// Applies one fault event.
    pub fn apply(&mut self, event: &FaultEvent) {
        let net = NetSim::current();
        match event.action {
            FaultAction::Crash { node } => self.crash(node),
            FaultAction::Retire { node } => {
                self.crash(node);
                self.retired.insert(node);
                self.trace.record(node, "retire", 0, 0);
            }
            FaultAction::Restart { node } => self.restart(node),
            FaultAction::Isolate { node } => {
                if let Some(id) = self.sim_id(node) {
                    net.clog_node(id);
                    self.trace.record(node, "isolate", 0, 0);
                }
            }
            FaultAction::Rejoin { node } => {
                if let Some(id) = self.sim_id(node) {
                    net.unclog_node(id);
                    self.trace.record(node, "rejoin", 0, 0);
                }
            }
            FaultAction::Cut { from, to } => {
                if let (Some(a), Some(b)) = (self.sim_id(from), self.sim_id(to)) {
                    net.clog_link(a, b);
                    self.trace.record(from, "cut", u64::from(to), 0);
                }
            }
            FaultAction::Uncut { from, to } => {
                if let (Some(a), Some(b)) = (self.sim_id(from), self.sim_id(to)) {
                    net.unclog_link(a, b);
                    self.trace.record(from, "uncut", u64::from(to), 0);
                }
            }
            FaultAction::PacketLoss { rate } => {
                net.update_config(|c| c.packet_loss_rate = rate);
                self.trace.record(0, "packet-loss", (rate * 1e6) as u64, 0);
            }
            FaultAction::StartCompute { node } => self.start_compute(node),
            FaultAction::LoseDisk { node } => {
                self.crash(node);
                if let Some(disk) = self.disks.get(&node) {
                    disk.wipe();
                    self.checker.note_disk_loss(NodeId(node));
                    if matches!(Role::of(node), Role::Safekeeper(_)) {
                        self.disk_lost.insert(node);
                    }
                }
            }
            FaultAction::Rot { node, pick } => {
                let disk = self.disks.get(&node);
                if let Some(rotted) = disk.and_then(|d| d.rot_bit(u64::from(pick))) {
                    self.checker.note_rot(NodeId(node), rotted);
                }
            }
            FaultAction::FailReads {
                node,
                pick,
                sectors,
                for_ms,
            } => {
                let for_time = for_ms.map(Duration::from_millis);
                if let Some(disk) = self.disks.get(&node) {
                    disk.fail_reads(u64::from(pick), u64::from(sectors), for_time);
                }
            }
            FaultAction::FailSync { node } => self.on_disk(node, Disk::fail_next_sync),
            FaultAction::DiskFull { node } => {
                self.on_disk(node, Disk::fill);
                self.checker.note_disk_full(NodeId(node), true);
            }
            FaultAction::DiskSpace { node } => {
                self.on_disk(node, Disk::free_space);
                self.checker.note_disk_full(NodeId(node), false);
            }
            FaultAction::SlowDisk {
                node,
                extra_ms,
                for_ms,
            } => self.on_disk(node, |d| {
                d.slow(
                    Duration::from_millis(extra_ms),
                    Duration::from_millis(for_ms),
                )
            }),
            FaultAction::SlowLink {
                from,
                to,
                extra_ms,
                for_ms,
            } => self.links.spike(
                from,
                to,
                Duration::from_millis(extra_ms),
                Duration::from_millis(for_ms),
            ),
            FaultAction::HealAll => self.heal_all(),
        }
    }

    fn on_disk(&self, node: u32, fault: impl FnOnce(&Disk)) {
        if let Some(disk) = self.disks.get(&node) {
            fault(disk);
        }
    }

    fn crash(&mut self, node: u32) {
        let Some(id) = self.sim_id(node) else { return };
        if !self.down.insert(node) {
            return;
        }
        self.handle.kill(id);
        if let Some(disk) = self.disks.get(&node) {
            disk.crash();
            self.checker.note_crash(NodeId(node));
            self.checker.check_layers_durable(NodeId(node));
        }
        self.trace.record(node, "crash", 0, 0);
    }

    fn restart(&mut self, node: u32) {
        let Some(id) = self.sim_id(node) else { return };
        if self.retired.contains(&node) || !self.down.remove(&node) {
            return;
        }
        self.handle.restart(id);
        self.trace.record(node, "restart", 0, 0);
    }

    /// Every node up, every link whole, no packet loss.
    fn heal_all(&mut self) {
        for node in self.down.clone() {
            self.restart(node);
        }
        let net = NetSim::current();
        let ids: Vec<_> = self.nodes.values().map(|n| n.id()).collect();
        for &a in &ids {
            net.unclog_node(a);
            for &b in &ids {
                net.unclog_link(a, b);
            }
        }
        net.update_config(|c| c.packet_loss_rate = 0.0);
        self.links.heal();
        for (node, disk) in &self.disks {
            disk.heal();
            self.checker.note_disk_full(NodeId(*node), false);
        }
        self.trace.record(0, "heal-all", 0, 0);
    }
}

/// The safekeepers' WAL segment size.
pub fn segment_size(config: &Config) -> SegmentSize {
    SegmentSize::new(config.wal_segment_kb * 1024)
}

/// Where a pageserver's objects live in the bucket: `pageserver1/...`.
pub fn remote_prefix(id: NodeId) -> RemotePrefix {
    RemotePrefix(format!("{}/", Role::of(id.0).name()))
}

/// The compute's side of the cost model (and its checkpointer, which runs either way).
fn compute_cost(config: &Config) -> ComputeCost {
    let c = &config.cost;
    let mut cost = ComputeCost {
        clients: config.workload.clients,
        checkpoint_timeout: Duration::from_millis(config.checkpoint_timeout_ms),
        checkpoint_wal_bytes: config.checkpoint_wal_bytes(),
        ..ComputeCost::default()
    };
    if c.enabled {
        cost.vcpus = c.vcpus;
        cost.cpu_per_txn = Duration::from_secs_f64(c.cpu_per_txn_us / 1e6);
        cost.cpu_ns_per_wal_byte = c.cpu_ns_per_wal_byte;
        cost.link_bytes_per_s = c.link_mbit_per_s * 1e6 / 8.0;
    }
    cost
}

fn pageserver_cost(config: &Config) -> PageserverCost {
    let c = &config.cost;
    if !c.enabled {
        return PageserverCost::default();
    }
    PageserverCost {
        layer_visit: Duration::from_secs_f64(c.layer_visit_us / 1e6),
        ns_per_byte_read: 1e3 / c.layer_read_mb_per_s,
        walredo_fixed: Duration::from_secs_f64(c.walredo_fixed_us / 1e6),
        walredo_per_record: Duration::from_secs_f64(c.walredo_per_record_us / 1e6),
    }
}

/// Kills every node of a run and lets the executor drop their tasks. A node's tasks and madsim's
/// network hold each other (task -> endpoint -> network -> waker -> task), so a runtime dropped
/// with live nodes leaks all of a seed's memory, and a campaign would run out of it.
pub async fn shutdown(registry: &NodeRegistry) {
    let handle = Handle::current();
    let ids = std::mem::take(&mut *registry.lock().unwrap());
    for id in ids {
        handle.kill(id);
    }
    madsim::time::sleep(Duration::from_millis(1)).await;
}
