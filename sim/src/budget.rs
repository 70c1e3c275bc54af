//! Per-seed budgets and cancellation: what stops a seed that runs away or a campaign asked to
//! stop.
//!
//! A seed runs on its own thread (see the runner). This module counts the bytes that thread
//! holds (a global allocator that keeps a per-thread tally: one thread-local add per
//! allocation) and, through the run's trace, looks at its budget every
//! [`lakesim_faults::trace::WATCH_EVERY`] events (its wall time is told it by the thread that
//! waits for it, which reads the real clock):
//! past its wall time or memory, or once the campaign is stopping, the seed unwinds with a
//! [`Cut`] payload, which the runner turns into a `budget` failure or an interrupted seed.
//! Nothing here touches simulated behaviour: a check reads the wall clock and a counter and
//! either does nothing or ends the run, so a seed that finishes is bit-exact with or without
//! a budget.

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The allocator: mimalloc, with a per-thread count of live bytes. mimalloc rather than
/// glibc's malloc because a seed allocates and frees small objects (messages, tasks, timers,
/// page copies) at a high rate on one thread, and glibc's arenas spent about 13% of a `storm`
/// seed's time in `malloc`, `free` and their consolidation (perf, release build).
pub struct Counting;

static BACKEND: MiMalloc = MiMalloc;

/// mimalloc v3's `mi_option_purge_delay` (the option's index in v3's `mi_option_e`, which the
/// bundled header defines and libmimalloc-sys's constants, written for v2, do not name).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps memory a seed freed for the next seed instead of handing it back to the kernel. Each
/// seed runs on a new thread, and by default mimalloc returns the pages a finished seed held
/// after 10 ms, so the next seed faulted them in again and the kernel zeroed each one: about
/// 6% of a `storm` campaign's time (perf). Called once, at the start of `main`.
pub fn keep_freed_memory() {
    // SAFETY: sets a process-wide option by index; mimalloc reads it on its next purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

thread_local! {
    /// Bytes allocated minus bytes freed on this thread (frees of another thread's memory
    /// count here too; a seed's thread is new per seed, so its tally starts at zero).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The most `LIVE` has been on this thread.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Adds `delta` to this thread's tally (and its peak).
fn count(delta: isize) {
    let _ = LIVE.try_with(|l| {
        let now = l.get() + delta;
        l.set(now);
        if delta > 0 {
            let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
        }
    });
}

// SAFETY: defers every call to mimalloc; the tally is a plain thread-local with
// no destructor, so reaching it never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = BACKEND.alloc(layout);
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        BACKEND.dealloc(ptr, layout);
        count(-(layout.size() as isize));
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = BACKEND.alloc_zeroed(layout);
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = BACKEND.realloc(ptr, layout, new_size);
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Bytes this thread holds now.
pub fn live_bytes() -> u64 {
    live().max(0) as u64
}

/// This thread's tally, which starts below zero when the thread frees memory another made.
fn live() -> isize {
    LIVE.with(Cell::get)
}

/// The most bytes this thread has held at once.
pub fn peak_bytes() -> u64 {
    PEAK.with(|p| p.get().max(0) as u64)
}

/// Why a seed was cut short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The campaign is stopping (a signal, or stdout closed): the seed is not counted and a
    /// resumed campaign runs it again.
    Interrupted,
    /// The seed ran past its wall-clock budget.
    WallTime { limit: Duration },
    /// The seed held more memory than its budget.
    Memory { limit_bytes: u64, held: u64 },
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cut::Interrupted => write!(f, "interrupted"),
            Cut::WallTime { limit } => write!(f, "ran past its wall-clock budget of {limit:?}"),
            Cut::Memory { limit_bytes, held } => write!(
                f,
                "held {:.1} MiB, past its memory budget of {} MiB",
                *held as f64 / 1048576.0,
                limit_bytes >> 20
            ),
        }
    }
}

/// A seed's limits (none by default: `lakesim run` and tests run to the end).
#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub wall: Option<Duration>,
    pub memory_bytes: Option<u64>,
    /// Set when the campaign is stopping.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Limits {
    /// True when nothing is limited.
    pub fn is_none(&self) -> bool {
        self.wall.is_none() && self.memory_bytes.is_none() && self.stop.is_none()
    }
}

/// One seed's watch: its limits, and the flag its watchdog sets once the wall-clock budget is
/// spent. The watchdog is the thread that waits for the seed, because inside the simulation
/// madsim answers every clock read (`clock_gettime`) with simulated time.
#[derive(Clone, Debug)]
pub struct Watch {
    limits: Limits,
    time_up: Arc<AtomicBool>,
}

impl Watch {
    pub fn new(limits: &Limits) -> Watch {
        Watch {
            limits: limits.clone(),
            time_up: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The watchdog says the seed's wall time is spent.
    pub fn time_up(&self) {
        self.time_up.store(true, Ordering::Relaxed);
    }

    /// The check the seed makes from its own thread: unwinds with a [`Cut`] once a limit is
    /// passed.
    pub fn as_fn(&self) -> impl Fn() + Send + Sync + 'static {
        let watch = self.clone();
        move || {
            if let Some(cut) = watch.exceeded() {
                std::panic::panic_any(cut);
            }
        }
    }

    fn exceeded(&self) -> Option<Cut> {
        let stopping = self.limits.stop.as_ref();
        if stopping.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Some(Cut::Interrupted);
        }
        if self.time_up.load(Ordering::Relaxed) {
            let limit = self.limits.wall.unwrap_or_default();
            return Some(Cut::WallTime { limit });
        }
        let held = live_bytes();
        self.limits
            .memory_bytes
            .filter(|l| held > *l)
            .map(|limit_bytes| Cut::Memory { limit_bytes, held })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_follows_this_threads_allocations() {
        std::thread::spawn(|| {
            let before = live();
            let v = std::hint::black_box(vec![0u8; 1 << 20]);
            assert!(live() >= before + (1 << 20));
            drop(v);
            assert!(live() < before + (1 << 20));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_watch_cuts_on_memory_and_on_stop() {
        std::thread::spawn(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let limits = Limits {
                wall: Some(Duration::from_secs(1)),
                memory_bytes: Some(live_bytes() + (4 << 20)),
                stop: Some(stop.clone()),
            };
            let watch = Watch::new(&limits);
            assert_eq!(watch.exceeded(), None);
            let big = std::hint::black_box(vec![1u8; 8 << 20]);
            assert!(matches!(watch.exceeded(), Some(Cut::Memory { .. })));
            drop(big);
            watch.time_up();
            assert!(matches!(watch.exceeded(), Some(Cut::WallTime { .. })));
            stop.store(true, Ordering::Relaxed);
            assert_eq!(watch.exceeded(), Some(Cut::Interrupted));
        })
        .join()
        .unwrap();
    }
}
