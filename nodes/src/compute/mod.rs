//! The compute stub: a walproposer driving a client's transactions into the safekeepers.
//! It keeps no durable state: after a restart it is elected again and learns the WAL from the
//! safekeepers.

pub mod reader;
pub mod walproposer;
pub mod workload;

use crate::bugs::BugSet;
use crate::ids::NodeId;
use crate::net::Net;
use crate::observe::{Observation, Observer};
use std::sync::Arc;
use walproposer::{ComputeCost, Proposer, ProposerTiming};
use workload::Client;

/// Everything a compute process starts with.
#[derive(Clone)]
pub struct ComputeConfig {
    pub id: NodeId,
    pub safekeepers: Vec<NodeId>,
    pub bugs: BugSet,
    pub observer: Arc<dyn Observer>,
    /// The network's faults (duplication, latency spikes), which its interface applies.
    pub links: lakesim_faults::Links,
    pub full_page_writes: bool,
    pub timing: ProposerTiming,
    pub client: Arc<Client>,
    pub buggify: bool,
    /// Where GetPage@LSN reads go.
    pub pageservers: Vec<NodeId>,
    pub read_interval: std::time::Duration,
    /// Reads go to this page with this probability (the hot-page experiment), else to any.
    pub hot_read: Option<(crate::ids::PageId, f64)>,
    /// What the compute's CPU, its link and its checkpointer cost, and how many clients
    /// drive it (0: one transaction every `txn_interval`, open loop).
    pub cost: ComputeCost,
}

/// Runs a compute until the process is killed.
pub async fn run(cfg: ComputeConfig) {
    let net = match Net::bind(cfg.id, cfg.observer.clone(), cfg.links.clone()).await {
        Ok(net) => net,
        Err(e) => crate::process::abort(cfg.id, cfg.observer.as_ref(), &e).await,
    };
    cfg.observer.observe(cfg.id, Observation::Started);
    let proposer = Proposer::new(
        net,
        cfg.safekeepers,
        cfg.observer,
        cfg.bugs,
        cfg.timing,
        cfg.full_page_writes,
        cfg.client,
    )
    .with_buggify(cfg.buggify)
    .with_cost(cfg.cost)
    .with_reads(cfg.pageservers, cfg.read_interval, cfg.hot_read);
    proposer.run().await
}
