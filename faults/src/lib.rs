//! lakesim's fault models: the simulated disk, the trace every component records into, and the
//! network nemesis. Nothing here knows about WAL, pages or consensus.

pub mod disk;
pub mod links;
pub mod trace;

pub use disk::{Disk, DiskConfig};
pub use links::{Fate, Links};
pub use trace::{Event, Trace};
