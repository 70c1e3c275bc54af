//! The system under test: the WAL and page formats, the safekeeper, the compute stub and the
//! messages between them. Written as real services: a node sees its disk, its network and its
//! config, never the harness.

#[macro_use]
pub mod invariant;
pub mod ids;
pub mod page;
pub mod redo;
pub mod wal;

pub use ids::{Lsn, NodeId, PageId, Term, Xid};
pub use invariant::Invariant;
pub mod buggify;
pub mod bugs;
pub mod compute;
pub mod durable;
pub mod net;
pub mod object_store;
pub mod observe;
pub mod pageserver;
pub mod probe;
pub mod process;
pub mod proto;
pub mod safekeeper;
