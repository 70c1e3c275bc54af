//! The safekeeper's control file: the acceptor state that must survive any crash.
//!
//! Format: [`crate::durable::encode_checked`] (`magic | len | crc32c | JSON state`). It is replaced only
//! through [`crate::durable::write_atomic`], so after a crash the file holds a whole old or a
//! whole new state; the checksum turns anything else (a bug, bit rot) into a clear error rather
//! than a silently wrong term.

use crate::durable::{decode_checked, encode_checked, write_atomic};
use crate::ids::{Lsn, Term};
use crate::proto::{ProposerId, TermHistory};
use lakesim_faults::Disk;
use serde::{Deserialize, Serialize};
use std::io::{Error, ErrorKind, Result};

const FILE: &str = "safekeeper.control";
const MAGIC: u32 = 0x5afe_c0de;

/// What an acceptor persists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SafekeeperState {
    /// The highest term this acceptor has voted in or accepted.
    pub term: Term,
    /// The proposer it voted for in `term`.
    pub voted_for: Option<ProposerId>,
    /// Which terms wrote its WAL.
    pub term_history: TermHistory,
    /// The commit LSN it last learned (persisted lazily, so it may lag the in-memory one).
    pub commit_lsn: Lsn,
    /// Its WAL begins here: everything before was removed (or is about to be). A record
    /// boundary, persisted before any segment below it is removed.
    pub wal_start: Lsn,
    /// Start of the record that ends at `wal_start`: the first record kept names it as its
    /// `prev_lsn`.
    pub wal_start_prev: Lsn,
}

fn corrupt(why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidData,
        format!("control file {FILE}: {why}"),
    )
}

/// Reads the control file; a fresh state when there is none yet.
pub fn load(disk: &Disk) -> Result<SafekeeperState> {
    if !disk.exists(FILE) {
        return Ok(SafekeeperState::default());
    }
    decode_checked(MAGIC, &disk.read_all(FILE)?).map_err(|e| corrupt(&e))
}

/// Decodes a control file's bytes (the harness reads them from the disk as well).
pub fn decode(bytes: &[u8]) -> Result<SafekeeperState> {
    decode_checked(MAGIC, bytes).map_err(|e| corrupt(&e))
}

/// The control file's name on the safekeeper's disk.
pub const FILE_NAME: &str = FILE;

/// Persists `state` crash-safely (or, with the `control-file-unsynced` bug, not).
pub async fn persist(disk: &Disk, state: &SafekeeperState, unsynced: bool) -> Result<()> {
    write_atomic(disk, FILE, &encode_checked(MAGIC, state), unsynced).await
}
