//! The trace: the ordered sequence of significant events of one run, folded into a hash.
//!
//! Every component that does something observable (a disk write or sync, a message delivery, a
//! crash, a commit) records an [`Event`]. The trace hash is FNV-1a over the events in order, so
//! two runs with the same hash did the same things in the same order at the same simulated
//! times. The hash function is spelled out here rather than borrowed from `std`, whose hasher may
//! change between Rust releases, because hashes are pinned in `seeds/`.
//!
//! Recording is cheap (no allocation): the last [`RECENT_EVENTS`] events are kept for failure
//! reports, and the whole sequence only when a full log was asked for.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many events a failure report shows.
pub const RECENT_EVENTS: usize = 32;

/// One significant event. `a` and `b` carry its numbers (an LSN, a length, a term, a peer).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Event {
    pub time_ns: u64,
    pub node: u32,
    pub kind: &'static str,
    pub a: u64,
    pub b: u64,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = Duration::from_nanos(self.time_ns);
        write!(
            f,
            "{:>10.6}s n{} {} {} {}",
            d.as_secs_f64(),
            self.node,
            self.kind,
            self.a,
            self.b
        )
    }
}

struct TraceState {
    /// The simulation's clock, held so that an event reads the time without going through
    /// the `clock_gettime` hook madsim puts under `std::time::Instant` (a context lookup and
    /// two `Arc` clones per call).
    clock: madsim::time::TimeHandle,
    /// The clock's reading when the trace started.
    start: Duration,
    hash: u64,
    count: u64,
    recent: VecDeque<Event>,
    full: Option<Vec<Event>>,
    /// Called every [`WATCH_EVERY`] events, outside the lock: the harness's budget check,
    /// which may unwind to end the run (see [`Trace::set_watch`]).
    watch: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// How often the watch runs, in events.
pub const WATCH_EVERY: u64 = 1024;

/// A cloneable handle on one run's trace.
#[derive(Clone)]
pub struct Trace(Arc<Mutex<TraceState>>);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

impl Trace {
    /// A new trace whose clock starts now; call inside the simulation. With `keep_all`, every
    /// event is kept for [`Trace::events`].
    pub fn new(keep_all: bool) -> Trace {
        let clock = madsim::time::TimeHandle::current();
        Trace(Arc::new(Mutex::new(TraceState {
            start: clock.elapsed(),
            clock,
            hash: FNV_OFFSET,
            count: 0,
            recent: VecDeque::with_capacity(RECENT_EVENTS),
            full: keep_all.then(Vec::new),
            watch: None,
        })))
    }

    /// Installs `watch`, called from [`Trace::record`] every [`WATCH_EVERY`] events with no
    /// lock held, so that it may unwind (a budget or a stop request ends the run there). It
    /// must not change what the run does otherwise: the trace hash is the same with or without.
    pub fn set_watch(&self, watch: Arc<dyn Fn() + Send + Sync>) {
        self.0.lock().unwrap().watch = Some(watch);
    }

    /// Records one event at the current simulated time.
    pub fn record(&self, node: u32, kind: &'static str, a: u64, b: u64) {
        let mut s = self.0.lock().unwrap();
        let time_ns = (s.clock.elapsed() - s.start).as_nanos() as u64;
        let e = Event {
            time_ns,
            node,
            kind,
            a,
            b,
        };
        let mut h = s.hash;
        h = fnv(h, &time_ns.to_le_bytes());
        h = fnv(h, &node.to_le_bytes());
        h = fnv(h, kind.as_bytes());
        h = fnv(h, &a.to_le_bytes());
        h = fnv(h, &b.to_le_bytes());
        s.hash = h;
        s.count += 1;
        if s.recent.len() == RECENT_EVENTS {
            s.recent.pop_front();
        }
        s.recent.push_back(e);
        if let Some(full) = s.full.as_mut() {
            full.push(e);
        }
        if s.count.is_multiple_of(WATCH_EVERY) {
            if let Some(watch) = s.watch.clone() {
                drop(s);
                watch();
            }
        }
    }

    /// Simulated time since the trace started.
    pub fn elapsed(&self) -> Duration {
        let s = self.0.lock().unwrap();
        s.clock.elapsed() - s.start
    }

    /// Simulated time of the last event recorded (readable outside the simulation).
    pub fn elapsed_at_last_event(&self) -> Duration {
        let s = self.0.lock().unwrap();
        Duration::from_nanos(s.recent.back().map_or(0, |e| e.time_ns))
    }

    pub fn hash(&self) -> u64 {
        self.0.lock().unwrap().hash
    }

    pub fn count(&self) -> u64 {
        self.0.lock().unwrap().count
    }

    /// The last events, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        self.0.lock().unwrap().recent.iter().copied().collect()
    }

    /// Every event, when the trace was made with `keep_all`.
    pub fn events(&self) -> Option<Vec<Event>> {
        self.0.lock().unwrap().full.clone()
    }
}
