//! Newtypes for the numbers the protocol speaks in, so that mixing an LSN with a term
//! or a node id is a compile error rather than a silent bug.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A log sequence number: a byte offset into the WAL stream.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const ZERO: Lsn = Lsn(0);

    /// The LSN `bytes` further along the stream.
    pub fn advance(self, bytes: u64) -> Lsn {
        Lsn(self.0.checked_add(bytes).expect("LSN overflow"))
    }

    /// Bytes from `earlier` to `self`; panics if `earlier` is after `self`.
    pub fn bytes_since(self, earlier: Lsn) -> u64 {
        assert!(earlier <= self, "bytes_since: {earlier} is after {self}");
        self.0 - earlier.0
    }
}

impl fmt::Display for Lsn {
    // Postgres prints LSNs as two hex halves: 0/16B3748.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A Paxos term (Neon: `Term`): a proposer's ballot number.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
pub struct Term(pub u64);

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// A node of the simulated cluster.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A transaction id.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
pub struct Xid(pub u64);

/// A page number (one relation, so the block number names the page).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
pub struct PageId(pub u32);
