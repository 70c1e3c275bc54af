//! The safekeeper's control file: the acceptor state that must survive any crash, and the
//! timeline's existence on this safekeeper.
//!
//! Format: two copies, `safekeeper.control.0` and `.1`, each [`COPY_SIZE`] bytes overwritten
//! in place (as Postgres writes `pg_control`): [`crate::durable::encode_checked`] of the state
//! with its sequence number, zero-padded. A persist writes and fsyncs copy 0, then copy 1, and
//! only then is the new state acted on. So after a crash at least one copy holds the last state
//! acted on or a newer one, a torn or rotted copy fails its checksum and the other is used, and
//! of two valid copies the higher sequence wins. Writing in place needs no new space: a full
//! disk never stops a vote from being persisted.
//!
//! The timeline exists on this safekeeper only once the control plane created it
//! ([`create`]: Neon's timeline creation call). A safekeeper whose disk holds no control file
//! (its disk was lost) or none it can verify does not start as if it had never voted: it stays
//! out of the quorum ([`Loaded::Untrusted`]), until an operator replaces it (membership change,
//! not modelled).

use crate::durable::{decode_checked, encode_checked};
use crate::ids::{Lsn, Term};
use crate::proto::{ProposerId, TermHistory};
use lakesim_faults::Disk;
use serde::{Deserialize, Serialize};
use std::io::Result;

const COPIES: [&str; 2] = ["safekeeper.control.0", "safekeeper.control.1"];
const MAGIC: u32 = 0x5afe_c0de;
/// Bytes per copy: room for a term history of a few hundred terms.
pub const COPY_SIZE: usize = 16 * 1024;

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

/// One copy's contents: the state and the persist it came from.
#[derive(Serialize, Deserialize)]
struct Copy {
    seq: u64,
    state: SafekeeperState,
}

/// What a safekeeper finds on its disk.
#[derive(Debug)]
pub enum Loaded {
    /// A verified state, with the sequence number of the persist that wrote it.
    State(SafekeeperState, u64),
    /// No state it can trust, and why: it must stay out of the quorum.
    Untrusted(String),
}

/// Decodes one copy; `trust_rot` (the rotted-control-file-trusted bug) skips the checksum
/// when the contents still parse.
fn decode_copy(bytes: &[u8], trust_rot: bool) -> std::result::Result<Copy, String> {
    match decode_checked::<Copy>(MAGIC, bytes) {
        Err(e) if trust_rot && e.contains("checksum") => {
            let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
            let body = bytes.get(12..12 + len).ok_or("truncated body")?;
            serde_json::from_slice(body).map_err(|e| e.to_string())
        }
        other => other,
    }
}

/// Picks the state from the copies' bytes (`None`: that copy could not be read at all).
fn choose(copies: [Option<Vec<u8>>; 2], trust_rot: bool) -> Loaded {
    let mut why = Vec::new();
    let mut best: Option<Copy> = None;
    for (name, bytes) in COPIES.iter().zip(copies) {
        let decoded = match bytes {
            None => Err("missing or unreadable".to_string()),
            Some(b) => decode_copy(&b, trust_rot),
        };
        match decoded {
            Ok(c) if best.as_ref().is_none_or(|b| c.seq > b.seq) => best = Some(c),
            Ok(_) => {}
            Err(e) => why.push(format!("{name}: {e}")),
        }
    }
    match best {
        Some(c) => Loaded::State(c.state, c.seq),
        None => Loaded::Untrusted(why.join("; ")),
    }
}

/// Reads the control file. An unreadable copy (EIO) counts as a bad one: the other may serve.
pub async fn load(disk: &Disk, trust_rot: bool) -> Loaded {
    let mut copies = [None, None];
    for (slot, name) in copies.iter_mut().zip(COPIES) {
        if disk.exists(name) {
            *slot = disk.read_all(name).await.ok();
        }
    }
    choose(copies, trust_rot)
}

/// The state a crash would leave on `disk` (for the harness, which judges a node's promises
/// against its disk): `None` when no copy verifies.
pub fn durable_state(disk: &Disk) -> Option<SafekeeperState> {
    match choose(COPIES.map(|n| disk.read_durable(n)), false) {
        Loaded::State(state, _) => Some(state),
        Loaded::Untrusted(_) => None,
    }
}

/// Whether `name` is one of the control file's copies.
pub fn is_control_file(name: &str) -> bool {
    COPIES.contains(&name)
}

fn encode(seq: u64, state: &SafekeeperState) -> Vec<u8> {
    let mut bytes = encode_checked(
        MAGIC,
        &Copy {
            seq,
            state: state.clone(),
        },
    );
    assert!(
        bytes.len() <= COPY_SIZE,
        "control file state of {} bytes outgrew its {COPY_SIZE}-byte copy",
        bytes.len()
    );
    bytes.resize(COPY_SIZE, 0);
    bytes
}

/// Persists `state` as persist number `seq` (or, with the `control-file-unsynced` bug,
/// without its fsyncs). Copy 0 is durable before copy 1 is touched.
pub async fn persist(disk: &Disk, seq: u64, state: &SafekeeperState, unsynced: bool) -> Result<()> {
    let bytes = encode(seq, state);
    for name in COPIES {
        disk.write(name, 0, &bytes)?;
        if !unsynced {
            disk.sync(name).await?;
        }
    }
    Ok(())
}

/// The control plane creates the timeline on this safekeeper: both copies, full size, durable
/// with their names. Before this, and after a disk loss, the safekeeper has no timeline.
pub async fn create(disk: &Disk) -> Result<()> {
    let bytes = encode(0, &SafekeeperState::default());
    for name in COPIES {
        disk.create(name)?;
        disk.write(name, 0, &bytes)?;
        disk.sync(name).await?;
    }
    disk.sync_dir().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(term: u64) -> SafekeeperState {
        SafekeeperState {
            term: Term(term),
            ..SafekeeperState::default()
        }
    }

    #[test]
    fn the_newest_verified_copy_wins_and_a_bad_one_is_passed_over() {
        let (old, new) = (encode(1, &state(1)), encode(2, &state(2)));
        let term = |l: Loaded| match l {
            Loaded::State(s, _) => Some(s.term.0),
            Loaded::Untrusted(_) => None,
        };
        assert_eq!(term(choose([Some(new.clone()), Some(old.clone())], false)), Some(2));
        assert_eq!(term(choose([Some(old.clone()), Some(new.clone())], false)), Some(2));
        let mut torn = new.clone();
        torn[20] ^= 1;
        assert_eq!(term(choose([Some(torn.clone()), Some(old.clone())], false)), Some(1));
        assert_eq!(term(choose([None, Some(old)], false)), Some(1));
        match choose([Some(torn.clone()), None], false) {
            Loaded::Untrusted(why) => assert!(why.contains("checksum"), "{why}"),
            l => panic!("a rotted lone copy was trusted: {l:?}"),
        }
    }

    #[test]
    fn the_planted_bug_trusts_a_rotted_copy_that_still_parses() {
        let mut bytes = encode(3, &state(5));
        // '5' -> '4' in `"term":5`: still JSON, a lower term.
        let at = bytes.windows(8).position(|w| w == b"\"term\":5").unwrap() + 7;
        bytes[at] ^= 1;
        assert!(matches!(choose([Some(bytes.clone()), None], false), Loaded::Untrusted(_)));
        match choose([Some(bytes), None], true) {
            Loaded::State(s, _) => assert_eq!(s.term, Term(4)),
            l => panic!("{l:?}"),
        }
    }
}
