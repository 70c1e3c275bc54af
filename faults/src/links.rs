//! The network's faults beyond what madsim's own network does (loss, clogged links, per-message
//! latency): duplication and latency spikes, per directed link. Owned by the harness and shared
//! with every node's network interface, which asks it, for each message sent, how many copies
//! go out and how late. Node code never decides either.
//!
//! Semantics: a message on a link with a spike leaves `extra` later than it would (its copies
//! too), so a spike longer than a peer's timeout is a timeout; a duplicate is the same message
//! delivered twice, each copy with its own network latency. Which messages are duplicated is
//! drawn from the links' own seeded stream, in send order, which the simulation fixes.

use crate::trace::Trace;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct LinksState {
    rng: ChaCha8Rng,
    duplicate_probability: f64,
    /// Latency spikes: (from, to) -> (until, extra).
    spikes: BTreeMap<(u32, u32), (madsim::time::Instant, Duration)>,
    trace: Option<Trace>,
}

/// What happens to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fate {
    pub copies: u8,
    pub delay: Duration,
}

/// Handle on the links' fault state; clones share it.
#[derive(Clone)]
pub struct Links(Arc<Mutex<LinksState>>);

impl Links {
    pub fn new(seed: u64, duplicate_probability: f64, trace: Option<Trace>) -> Links {
        assert!((0.0..=1.0).contains(&duplicate_probability));
        Links(Arc::new(Mutex::new(LinksState {
            rng: ChaCha8Rng::seed_from_u64(seed),
            duplicate_probability,
            spikes: BTreeMap::new(),
            trace,
        })))
    }

    /// No faults: every message once, on time (for tests and tools outside a run).
    pub fn none() -> Links {
        Links::new(0, 0.0, None)
    }

    /// The fate of one message from `from` to `to`, sent now.
    pub fn fate(&self, from: u32, to: u32) -> Fate {
        let mut s = self.0.lock().unwrap();
        let p = s.duplicate_probability;
        let copies = if p > 0.0 && s.rng.gen_bool(p) { 2 } else { 1 };
        let delay = match s.spikes.get(&(from, to)) {
            Some(&(until, extra)) if madsim::time::Instant::now() < until => extra,
            Some(_) => {
                s.spikes.remove(&(from, to));
                Duration::ZERO
            }
            None => Duration::ZERO,
        };
        Fate { copies, delay }
    }

    /// Messages from `from` to `to` leave `extra` late for `for_time`.
    pub fn spike(&self, from: u32, to: u32, extra: Duration, for_time: Duration) {
        let mut s = self.0.lock().unwrap();
        let until = madsim::time::Instant::now() + for_time;
        s.spikes.insert((from, to), (until, extra));
        if let Some(t) = &s.trace {
            t.record(from, "net.spike", u64::from(to), extra.as_millis() as u64);
        }
    }

    /// Every spike ends.
    pub fn heal(&self) {
        self.0.lock().unwrap().spikes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_delays_its_link_only_and_ends() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        rt.block_on(async {
            let links = Links::new(1, 0.0, None);
            links.spike(1, 2, Duration::from_millis(300), Duration::from_millis(100));
            assert_eq!(links.fate(1, 2).delay, Duration::from_millis(300));
            assert_eq!(links.fate(2, 1).delay, Duration::ZERO, "one direction");
            madsim::time::sleep(Duration::from_millis(101)).await;
            assert_eq!(links.fate(1, 2).delay, Duration::ZERO);
        });
    }

    #[test]
    fn duplicates_come_at_the_configured_rate() {
        let links = Links::new(7, 0.25, None);
        let twice = (0..4000).filter(|_| links.fate(1, 2).copies == 2).count();
        assert!((800..1200).contains(&twice), "{twice} of 4000");
        assert!((0..100).all(|_| Links::none().fate(1, 2).copies == 1));
    }
}
