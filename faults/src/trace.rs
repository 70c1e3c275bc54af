//! The trace: the ordered sequence of significant events of one run, folded into a hash.
//!
//! Every component that does something observable (a disk write or sync, a message delivery, a
//! crash, a commit) records an [`Event`]. The trace hash folds the events in order, a 64-bit
//! word at a time ([`mix`]), so two runs with the same hash did the same things in the same
//! order at the same simulated times. The hash function is spelled out here rather than
//! borrowed from `std`, whose hasher may change between Rust releases, because hashes are
//! pinned in `seeds/`.
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

/// The hash of an empty trace.
const HASH_START: u64 = 0xcbf2_9ce4_8422_2325;
/// The odd multiplier [`mix`] folds with: the 64-bit golden ratio.
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

/// Folds `word` into `hash`: a 64x64-bit multiply whose 128-bit product is folded to 64 bits
/// (the mixing step of wyhash and foldhash), so that every input bit reaches every output bit.
/// A word a step rather than FNV-1a's byte a step: every event of every seed pays for it.
fn mix(hash: u64, word: u64) -> u64 {
    let product = u128::from(hash ^ word) * u128::from(MIX);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Folds an event's kind in: its length, then its bytes eight at a time.
fn mix_str(mut hash: u64, s: &str) -> u64 {
    hash = mix(hash, s.len() as u64);
    for chunk in s.as_bytes().chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = mix(hash, u64::from_le_bytes(word));
    }
    hash
}

/// The trace hash after `e`, from the hash before it.
fn fold_event(hash: u64, e: &Event) -> u64 {
    let mut h = mix(hash, e.time_ns);
    h = mix(h, u64::from(e.node));
    h = mix_str(h, e.kind);
    h = mix(h, e.a);
    mix(h, e.b)
}

impl Trace {
    /// A new trace whose clock starts now; call inside the simulation. With `keep_all`, every
    /// event is kept for [`Trace::events`].
    pub fn new(keep_all: bool) -> Trace {
        let clock = madsim::time::TimeHandle::current();
        Trace(Arc::new(Mutex::new(TraceState {
            start: clock.elapsed(),
            clock,
            hash: HASH_START,
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
        s.hash = fold_event(s.hash, &e);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [&str; 4] = ["disk.write", "disk.sync", "AppendRequest", "AppendResponse"];

    fn event(f: [u64; 5]) -> Event {
        Event {
            time_ns: f[0],
            node: f[1] as u32,
            kind: KINDS[f[2] as usize % KINDS.len()],
            a: f[3],
            b: f[4],
        }
    }

    proptest! {
        /// Changing any one field of an event changes the hash after it, whatever came before:
        /// a replay that did one thing differently does not keep its pinned hash.
        #[test]
        fn each_field_reaches_the_hash(
            before in any::<u64>(),
            fields in any::<[u64; 5]>(),
            which in 0usize..5,
            flip in 1u64..,
        ) {
            let mut changed = fields;
            changed[which] ^= if which == 1 { flip & 0xffff_ffff | 1 } else { flip };
            if which == 2 {
                changed[2] = fields[2].wrapping_add(1);
            }
            prop_assert_ne!(fold_event(before, &event(fields)), fold_event(before, &event(changed)));
        }

        /// Two events swapped give another hash: the order of events is part of the trace.
        #[test]
        fn order_reaches_the_hash(x in any::<[u64; 5]>(), y in any::<[u64; 5]>()) {
            prop_assume!(event(x) != event(y));
            let (ex, ey) = (event(x), event(y));
            let xy = fold_event(fold_event(HASH_START, &ex), &ey);
            let yx = fold_event(fold_event(HASH_START, &ey), &ex);
            prop_assert_ne!(xy, yx);
        }
    }

    #[test]
    fn a_kind_hashes_its_every_byte() {
        let base = mix_str(HASH_START, "AppendRequest");
        assert_ne!(base, mix_str(HASH_START, "AppendRequesu"));
        assert_ne!(base, mix_str(HASH_START, "AppendRequest\0"));
        assert_ne!(mix_str(HASH_START, ""), mix_str(HASH_START, "\0"));
    }
}
