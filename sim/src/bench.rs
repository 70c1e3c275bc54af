//! `lakesim bench`: what lakesim costs per message against madsim's own floor, in one process.
//!
//! The floor: nodes that do nothing but exchange messages of lakesim's typical size over
//! madsim's network (receive one, send one on), through the same calls lakesim's nodes use
//! (`send_to_raw_now`, `recv_from_raw_now`), so its nanoseconds per message are madsim's
//! scheduler, timers and network with no node logic. Then each scenario runs seeds one after
//! another for the same wall time; its nanoseconds per message are everything a seed does
//! (nodes, disks, faults, checkers, trace) divided by the messages it delivered. The ratio of
//! the two is what lakesim's hot path adds. Numbers are comparable within one run (same
//! machine, same load), not across machines.

use crate::plan::Plan;
use crate::runner::{run_seed, RunOptions};
use crate::scenario;
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
    pub scenarios: Vec<Row>,
    pub note: &'static str,
}

const NOTE: &str = "numbers from one run are comparable with each other (same machine, same load), not across machines";

/// Runs the floor, then every scenario, `seconds` of wall time each.
pub fn run(seconds: f64, progress: &dyn Fn(&str)) -> Bench {
    let floor = measure_floor(seconds);
    progress(&format!(
        "floor: {:.0} ns per message ({:.0} messages/s)",
        floor.ns_per_message, floor.messages_per_second
    ));
    let scenarios = scenario::ALL
        .iter()
        .map(|s| {
            let row = measure_scenario(s.name, seconds, floor.ns_per_message);
            progress(&format!(
                "{}: {:.0} ns per message, {:.2}x the floor",
                row.scenario, row.ns_per_message, row.ratio
            ));
            row
        })
        .collect();
    Bench {
        seconds_per_row: seconds,
        floor,
        scenarios,
        note: NOTE,
    }
}

fn measure_scenario(name: &str, seconds: f64, floor_ns: f64) -> Row {
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
        floor_ns_per_message: floor_ns,
        ratio: ns / floor_ns,
        peak_memory_mib: peak as f64 / 1048576.0,
    }
}

/// madsim alone: a short calibration run, then one sized to take about `seconds`.
fn measure_floor(seconds: f64) -> Floor {
    let probe = floor_run(20_000);
    let per_message = probe.0 / probe.1.max(1) as f64;
    let target = ((seconds / per_message) as u64).clamp(20_000, 50_000_000);
    let (wall, messages) = floor_run(target);
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
fn floor_run(target: u64) -> (f64, u64) {
    std::thread::spawn(move || {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        let delivered = Arc::new(AtomicU64::new(0));
        let count = delivered.clone();
        let started = Instant::now();
        runtime.block_on(async move {
            let handle = madsim::runtime::Handle::current();
            let addr = |i: u32| -> SocketAddr { format!("10.9.0.{i}:1").parse().unwrap() };
            for i in 1..=FLOOR_NODES {
                let count = count.clone();
                let node = handle.create_node().ip(addr(i).ip()).build();
                node.spawn(async move {
                    let ep = madsim::net::Endpoint::bind(addr(i)).await.unwrap();
                    for k in 0..FLOOR_IN_FLIGHT {
                        let to = addr((i + k) % FLOOR_NODES + 1);
                        let _ =
                            ep.send_to_raw_now(to, TAG, Box::new(vec![0u8; FLOOR_MESSAGE_BYTES]));
                    }
                    let mut next = i;
                    while let Ok((payload, _)) = ep.recv_from_raw_now(TAG).await {
                        count.fetch_add(1, Ordering::Relaxed);
                        next = next % FLOOR_NODES + 1;
                        let _ = ep.send_to_raw_now(addr(next), TAG, payload);
                    }
                });
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
        "{:<22} {:>6} {:>8} {:>10} {:>10} {:>9} {:>9} {:>7} {:>8}\n",
        "scenario",
        "seeds",
        "seeds/s",
        "msgs/s",
        "events/s",
        "sim s/s",
        "ns/msg",
        "ratio",
        "peak MiB"
    );
    for r in &b.scenarios {
        s += &format!(
            "{:<22} {:>6} {:>8.1} {:>10.0} {:>10.0} {:>9.0} {:>9.0} {:>7.2} {:>8.1}\n",
            r.scenario,
            r.seeds,
            r.seeds_per_second,
            r.messages_per_second,
            r.events_per_second,
            r.simulated_seconds_per_wall_second,
            r.ns_per_message,
            r.ratio,
            r.peak_memory_mib
        );
    }
    s += &format!("({NOTE})\n");
    s
}
