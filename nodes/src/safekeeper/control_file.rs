//! The safekeeper's control file: the acceptor state that must survive any crash.
//!
//! Format: `magic u32 | version u32 | len u32 | crc32c u32 | JSON state`. It is replaced only
//! through [`crate::durable::write_atomic`], so after a crash the file holds a whole old or a
//! whole new state; the checksum turns anything else (a bug, bit rot) into a clear error rather
//! than a silently wrong term.

use crate::durable::write_atomic;
use crate::ids::{Lsn, Term};
use crate::proto::{ProposerId, TermHistory};
use lakesim_faults::Disk;
use serde::{Deserialize, Serialize};
use std::io::{Error, ErrorKind, Result};

const FILE: &str = "safekeeper.control";
const MAGIC: u32 = 0x5afe_c0de;
const VERSION: u32 = 1;

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
}

fn encode(state: &SafekeeperState) -> Vec<u8> {
    let body = serde_json::to_vec(state).expect("state serialises");
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn corrupt(why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidData,
        format!("control file {FILE}: {why}"),
    )
}

fn decode(bytes: &[u8]) -> Result<SafekeeperState> {
    let word = |i: usize| {
        bytes
            .get(i * 4..i * 4 + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    if word(0) != Some(MAGIC) || word(1) != Some(VERSION) {
        return Err(corrupt("bad magic or version"));
    }
    let len = word(2).ok_or_else(|| corrupt("truncated header"))? as usize;
    let body = bytes
        .get(16..16 + len)
        .ok_or_else(|| corrupt("truncated body"))?;
    if word(3) != Some(crc32c::crc32c(body)) {
        return Err(corrupt("checksum mismatch"));
    }
    serde_json::from_slice(body).map_err(|e| corrupt(&e.to_string()))
}

/// Reads the control file; a fresh state when there is none yet.
pub fn load(disk: &Disk) -> Result<SafekeeperState> {
    if !disk.exists(FILE) {
        return Ok(SafekeeperState::default());
    }
    decode(&disk.read_all(FILE)?)
}

/// Persists `state` crash-safely (or, with the `control-file-unsynced` bug, not).
pub async fn persist(disk: &Disk, state: &SafekeeperState, unsynced: bool) -> Result<()> {
    write_atomic(disk, FILE, &encode(state), unsynced).await
}
