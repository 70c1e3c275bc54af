//! `lakesim bench`: what lakesim costs per message against madsim's own floor, in one process.
//!
//! The floor: nodes that do nothing but exchange messages of lakesim's typical size over
//! madsim's network (receive one, send one on), through madsim's own raw calls without a
//! delay of their own (`send_to_raw_now`, `recv_from_raw_now`), so its nanoseconds per message
//! are madsim's scheduler, timers and network with no node logic. The same exchange through
//! madsim's public calls (`send_to_raw`, `recv_from_raw`, each of which first sleeps madsim's
//! random delay) is what a bare program on madsim pays; it is shown beside the floor, and the
//! ratios are to the faster floor, which lakesim's network uses. Then the same exchange through lakesim's
//! own network interface ([`Net`]: typed messages, the fault layer's link fates, the mailbox
//! poll, one trace event per delivery), still with no node logic: what lakesim's
//! messaging adds to madsim's. Then each scenario runs seeds one after another for the same
//! wall time; its nanoseconds per message are everything a seed does (nodes, disks, faults,
//! checkers, trace) divided by the messages it delivered. The ratio to the floor is what
//! lakesim adds in all; the ratio to the messaging row, what the nodes' work, the disks and
//! the checks add beyond moving the message. Numbers are comparable within one run (same
//! machine, same load), not across machines.

use crate::plan::Plan;
use crate::runner::{run_seed, RunOptions};
use crate::scenario;
use lakesim_faults::{Links, Trace};
use lakesim_nodes::net::Net;
use lakesim_nodes::observe::{Observation, Observer};
use lakesim_nodes::proto::Message;
use lakesim_nodes::{Lsn, NodeId, Term};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Nodes in the floor's exchange (a cluster's: three safekeepers, a compute, a pageserver,
/// the object store).
const FLOOR_NODES: u32 = 6;
/// Messages each floor node keeps in flight.
const FLOOR_IN_FLIGHT: u32 = 8;
/// Bytes per floor message: about an AppendRequest of a few records.
const FLOOR_MESSAGE_BYTES: usize = 256;
const TAG: u64 = 7;

/// One measured row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub seeds: u64,
    pub seeds_per_second: f64,
    pub messages_per_second: f64,
    pub events_per_second: f64,
    pub simulated_seconds_per_wall_second: f64,
    pub ns_per_message: f64,
    pub floor_ns_per_message: f64,
    pub ratio: f64,
    /// Nanoseconds per message over the public-call exchange's: what lakesim costs against a
    /// bare program on madsim's public API.
    pub ratio_to_public_api: f64,
    /// Nanoseconds per message over the messaging row's: what the nodes' work, the disks and
    /// the checks cost beyond moving the message.
    pub ratio_to_messaging: f64,
    pub peak_memory_mib: f64,
}

/// The floor's measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Floor {
    pub messages: u64,
    pub wall_seconds: f64,
    pub messages_per_second: f64,
    pub ns_per_message: f64,
    pub nodes: u32,
    pub in_flight_per_node: u32,
    pub message_bytes: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Bench {
    pub seconds_per_row: f64,
    pub floor: Floor,
    /// The floor's exchange through madsim's public calls, each with madsim's random delay.
    pub public_api: Floor,
    /// The floor's exchange through lakesim's `Net`, with a trace event per delivery.
    pub messaging: Floor,
    /// The messaging row's nanoseconds per message over the floor's.
    pub messaging_ratio: f64,
    pub scenarios: Vec<Row>,
    pub note: &'static str,
}

const NOTE: &str = "numbers from one run are comparable with each other (same machine, same load), not across machines";

/// Runs the floor, then every scenario, `seconds` of wall time each.
pub fn run(seconds: f64, progress: &dyn Fn(&str)) -> Bench {
    let floor = measure_floor(seconds, Exchange::Madsim);
    progress(&format!(
        "floor: {:.0} ns per message ({:.0} messages/s)",
        floor.ns_per_message, floor.messages_per_second
    ));
    let public_api = measure_floor(seconds, Exchange::MadsimPublic);
    progress(&format!(
        "madsim's public calls (send_to_raw, recv_from_raw): {:.0} ns per message, {:.2}x the floor",
        public_api.ns_per_message,
        public_api.ns_per_message / floor.ns_per_message
    ));
    let messaging = measure_floor(seconds, Exchange::LakesimNet);
    let messaging_ratio = messaging.ns_per_message / floor.ns_per_message;
    progress(&format!(
        "messaging (lakesim's Net, no node logic): {:.0} ns per message, {messaging_ratio:.2}x the floor",
        messaging.ns_per_message
    ));
    let scenarios = scenario::ALL
        .iter()
        .map(|s| {
            let row = measure_scenario(s.name, seconds, [&floor, &public_api, &messaging]);
            progress(&format!(
                "{}: {:.0} ns per message, {:.2}x the floor, {:.2}x messaging",
                row.scenario, row.ns_per_message, row.ratio, row.ratio_to_messaging
            ));
            row
        })
        .collect();
    Bench {
        seconds_per_row: seconds,
        floor,
        public_api,
        messaging,
        messaging_ratio,
        scenarios,
        note: NOTE,
    }
}

/// One scenario's row; `against` is the floor, the public-call exchange and the messaging row.
fn measure_scenario(name: &str, seconds: f64, against: [&Floor; 3]) -> Row {
    let [floor, public_api, messaging] = against;
    let config = scenario::find(name).expect("a listed scenario");
    let started = Instant::now();
    let (mut seeds, mut messages, mut events, mut sim, mut peak) = (0u64, 0u64, 0u64, 0.0, 0u64);
    while seeds == 0 || started.elapsed().as_secs_f64() < seconds {
        let plan = Plan::generate(seeds, &config);
        let o = run_seed(seeds, &plan, &RunOptions::default());
        seeds += 1;
        messages += o.stats.messages;
        events += o.events;
        sim += o.sim_time.as_secs_f64();
        peak = peak.max(o.peak_memory_bytes);
    }
    let wall = started.elapsed().as_secs_f64();
    let ns = wall * 1e9 / messages.max(1) as f64;
    Row {
        scenario: name.to_string(),
        seeds,
        seeds_per_second: seeds as f64 / wall,
        messages_per_second: messages as f64 / wall,
        events_per_second: events as f64 / wall,
        simulated_seconds_per_wall_second: sim / wall,
        ns_per_message: ns,
        floor_ns_per_message: floor.ns_per_message,
        ratio: ns / floor.ns_per_message,
        ratio_to_public_api: ns / public_api.ns_per_message,
        ratio_to_messaging: ns / messaging.ns_per_message,
        peak_memory_mib: peak as f64 / 1048576.0,
    }
}

/// What passes the floor's messages from node to node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exchange {
    /// madsim's endpoint, boxed byte buffers: madsim alone.
    Madsim,
    /// madsim's endpoint through its public calls, which sleep a random delay before each
    /// send and after each receive: a bare program on madsim.
    MadsimPublic,
    /// lakesim's [`Net`]: typed messages (an `AppendRequest` carrying the floor's bytes), link
    /// fates, the cancellation-safe mailbox poll, and a trace event per delivery as the checker
    /// records it.
    LakesimNet,
}

/// One floor: a short calibration run, then one sized to take about `seconds`.
fn measure_floor(seconds: f64, exchange: Exchange) -> Floor {
    let probe = floor_run(20_000, exchange);
    let per_message = probe.0 / probe.1.max(1) as f64;
    let target = ((seconds / per_message) as u64).clamp(20_000, 50_000_000);
    let (wall, messages) = floor_run(target, exchange);
    Floor {
        messages,
        wall_seconds: wall,
        messages_per_second: messages as f64 / wall,
        ns_per_message: wall * 1e9 / messages as f64,
        nodes: FLOOR_NODES,
        in_flight_per_node: FLOOR_IN_FLIGHT,
        message_bytes: FLOOR_MESSAGE_BYTES,
    }
}

/// Exchanges `target` messages; returns the wall seconds it took and the messages delivered.
fn floor_run(target: u64, exchange: Exchange) -> (f64, u64) {
    std::thread::spawn(move || {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        let delivered = Arc::new(AtomicU64::new(0));
        let count = delivered.clone();
        let started = Instant::now();
        runtime.block_on(async move {
            let handle = madsim::runtime::Handle::current();
            let trace = Trace::new(false);
            for i in 1..=FLOOR_NODES {
                let count = count.clone();
                let node = handle.create_node().ip(addr(i).ip()).build();
                match exchange {
                    Exchange::Madsim => node.spawn(madsim_node(i, count)),
                    Exchange::MadsimPublic => node.spawn(madsim_public_node(i, count)),
                    Exchange::LakesimNet => node.spawn(lakesim_node(i, count, trace.clone())),
                };
            }
            while count.load(Ordering::Relaxed) < target {
                madsim::time::sleep(Duration::from_millis(50)).await;
            }
        });
        (
            started.elapsed().as_secs_f64(),
            delivered.load(Ordering::Relaxed),
        )
    })
    .join()
    .expect("the floor run does not panic")
}

/// Floor node `i`'s address, on madsim's network alone.
fn addr(i: u32) -> SocketAddr {
    SocketAddr::new(lakesim_nodes::net::ip_of(NodeId(i)), 1)
}

/// The node after `i` in the ring of floor nodes.
fn next(i: u32) -> u32 {
    i % FLOOR_NODES + 1
}

/// Where node `i` sends its `k`th message in flight at the start: the `k`th node after it,
/// so that every node starts with the same load.
fn in_flight_target(i: u32, k: u32) -> u32 {
    (i + k) % FLOOR_NODES + 1
}

/// A floor node on madsim's endpoint: sends its messages in flight, then passes each one it
/// receives on to the next node.
async fn madsim_node(i: u32, count: Arc<AtomicU64>) {
    let ep = madsim::net::Endpoint::bind(addr(i)).await.unwrap();
    for k in 0..FLOOR_IN_FLIGHT {
        let to = addr(in_flight_target(i, k));
        let _ = ep.send_to_raw_now(to, TAG, Box::new(vec![0u8; FLOOR_MESSAGE_BYTES]));
    }
    let mut to = i;
    while let Ok((payload, _)) = ep.recv_from_raw_now(TAG).await {
        count.fetch_add(1, Ordering::Relaxed);
        to = next(to);
        let _ = ep.send_to_raw_now(addr(to), TAG, payload);
    }
}

/// [`madsim_node`] through madsim's public calls: each send and receive first sleeps madsim's
/// random delay, as any program on madsim's endpoint pays.
async fn madsim_public_node(i: u32, count: Arc<AtomicU64>) {
    let ep = madsim::net::Endpoint::bind(addr(i)).await.unwrap();
    for k in 0..FLOOR_IN_FLIGHT {
        let to = addr(in_flight_target(i, k));
        let _ = ep
            .send_to_raw(to, TAG, Box::new(vec![0u8; FLOOR_MESSAGE_BYTES]))
            .await;
    }
    let mut to = i;
    while let Ok((payload, _)) = ep.recv_from_raw(TAG).await {
        count.fetch_add(1, Ordering::Relaxed);
        to = next(to);
        let _ = ep.send_to_raw(addr(to), TAG, payload).await;
    }
}

/// Records each delivery in the trace as the checker does, and nothing else.
struct TraceDeliveries(Trace);

impl Observer for TraceDeliveries {
    fn observe(&self, node: NodeId, obs: Observation) {
        if let Observation::Delivered { from, kind, term } = obs {
            self.0.record(node.0, kind, u64::from(from.0), term.0);
        }
    }
}

/// A floor node on lakesim's [`Net`], passing typed messages on as [`madsim_node`] does.
async fn lakesim_node(i: u32, count: Arc<AtomicU64>, trace: Trace) {
    let observer = Arc::new(TraceDeliveries(trace));
    let links = Links::new(u64::from(i), 0.0, None);
    let net = Net::bind(NodeId(i), observer, links).await.unwrap();
    let append = Message::AppendRequest {
        term: Term(1),
        begin_lsn: Lsn::ZERO,
        wal: Arc::new(vec![0u8; FLOOR_MESSAGE_BYTES]),
        commit_lsn: Lsn::ZERO,
        truncate_lsn: Lsn::ZERO,
    };
    for k in 0..FLOOR_IN_FLIGHT {
        net.send(NodeId(in_flight_target(i, k)), append.clone());
    }
    let mut to = i;
    loop {
        let envelope = net.recv().await;
        count.fetch_add(1, Ordering::Relaxed);
        to = next(to);
        net.send(NodeId(to), envelope.msg);
    }
}

/// The table `lakesim bench` prints.
pub fn table(b: &Bench) -> String {
    let mut s = format!(
        "madsim floor: {:.0} ns per message, {:.0} messages/s ({} nodes, {} in flight each, {} bytes)\n",
        b.floor.ns_per_message,
        b.floor.messages_per_second,
        b.floor.nodes,
        b.floor.in_flight_per_node,
        b.floor.message_bytes
    );
    s += &format!(
        "madsim public calls (send_to_raw, recv_from_raw, each with madsim's random delay): {:.0} ns per message, {:.2}x the floor\n",
        b.public_api.ns_per_message,
        b.public_api.ns_per_message / b.floor.ns_per_message
    );
    s += &format!(
        "lakesim messaging (Net, trace, no node logic): {:.0} ns per message, {:.2}x the floor\n",
        b.messaging.ns_per_message, b.messaging_ratio
    );
    s += &format!(
        "{:<22} {:>6} {:>8} {:>10} {:>10} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8}\n",
        "scenario",
        "seeds",
        "seeds/s",
        "msgs/s",
        "events/s",
        "sim s/s",
        "ns/msg",
        "ratio",
        "x public",
        "x msging",
        "peak MiB"
    );
    for r in &b.scenarios {
        s += &format!(
            "{:<22} {:>6} {:>8.1} {:>10.0} {:>10.0} {:>9.0} {:>9.0} {:>7.2} {:>8.2} {:>8.2} {:>8.1}\n",
            r.scenario,
            r.seeds,
            r.seeds_per_second,
            r.messages_per_second,
            r.events_per_second,
            r.simulated_seconds_per_wall_second,
            r.ns_per_message,
            r.ratio,
            r.ratio_to_public_api,
            r.ratio_to_messaging,
            r.peak_memory_mib
        );
    }
    s += &format!("({NOTE})\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_exchanges_deliver_the_messages_asked_for() {
        for exchange in [
            Exchange::Madsim,
            Exchange::MadsimPublic,
            Exchange::LakesimNet,
        ] {
            let (wall, delivered) = floor_run(3_000, exchange);
            assert!(delivered >= 3_000, "{exchange:?} delivered {delivered}");
            assert!(wall > 0.0);
        }
    }

    #[test]
    fn every_floor_node_forwards_to_the_next_in_the_ring() {
        let ring: Vec<u32> = (1..=FLOOR_NODES).map(next).collect();
        assert_eq!(ring, [2, 3, 4, 5, 6, 1]);
    }
}
