//! The safekeeper's control file: the acceptor state that must survive any crash, and the
//! timeline's existence on this safekeeper.
//!
//! Format: two copies, `safekeeper.control.0` and `.1`, overwritten in place (as Postgres
//! writes `pg_control`): `magic | len | crc32c | body`, all little-endian, the body
//! `seq | term | voted_for + 1 (0: none) | commit_lsn | wal_start | wal_start_prev | n |
//! n x (term, lsn)` in u64s (n a u32). A persist writes and fsyncs copy 0, then copy 1, and only
//! then is the new state acted on. So after a crash at least one copy holds the last state acted
//! on or a newer one, a torn or rotted copy fails its checksum and the other is used, and of two
//! valid copies the higher sequence wins. A state found in one copy only is written to both
//! (the acceptor does, at open) before it is acted on: otherwise losing that copy later would
//! take the state back. Every byte of a copy is state (no padding), so bit rot
//! that strikes one always changes a number: what the checksum is for. A copy grows only when
//! the term history does (16 bytes a term): a full disk can stop a new term from being
//! persisted, and then the vote is not given.
//!
//! The timeline exists on this safekeeper only once the control plane created it
//! ([`create`]: Neon's timeline creation call). A safekeeper whose disk holds no control file
//! (its disk was lost) or none it can verify does not start as if it had never voted: it stays
//! out of the quorum ([`Loaded::Untrusted`]), until an operator replaces it (membership change,
//! not modelled).

use crate::ids::{Lsn, Term};
use crate::proto::{ProposerId, TermHistory, TermSwitch};
use lakesim_faults::Disk;
use serde::{Deserialize, Serialize};
use std::io::Result;

const COPIES: [&str; 2] = ["safekeeper.control.0", "safekeeper.control.1"];
const MAGIC: u32 = 0x5afe_c0de;
/// Header bytes: magic, body length, CRC32C of the body.
const HEADER: usize = 12;

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
struct Copy {
    seq: u64,
    state: SafekeeperState,
}

impl Copy {
    fn encode(&self) -> Vec<u8> {
        let st = &self.state;
        let fixed = [
            self.seq,
            st.term.0,
            st.voted_for.map_or(0, |p| p.0 + 1),
            st.commit_lsn.0,
            st.wal_start.0,
            st.wal_start_prev.0,
        ];
        let mut body = Vec::with_capacity(52 + 16 * st.term_history.0.len());
        fixed
            .iter()
            .for_each(|w| body.extend_from_slice(&w.to_le_bytes()));
        body.extend_from_slice(&(st.term_history.0.len() as u32).to_le_bytes());
        for t in &st.term_history.0 {
            body.extend_from_slice(&t.term.0.to_le_bytes());
            body.extend_from_slice(&t.lsn.0.to_le_bytes());
        }
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a copy; `trust_rot` (the rotted-control-file-trusted bug) skips the checksum.
    fn decode(bytes: &[u8], trust_rot: bool) -> std::result::Result<Copy, String> {
        let word = |i: usize| {
            bytes
                .get(i..i + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        };
        if word(0) != Some(MAGIC) {
            return Err("bad magic".into());
        }
        let len = word(4).ok_or("truncated header")? as usize;
        let body = bytes.get(HEADER..HEADER + len).ok_or("truncated body")?;
        if !trust_rot && word(8) != Some(crc32c::crc32c(body)) {
            return Err("checksum mismatch".into());
        }
        let u64_at = |i: usize| {
            body.get(i..i + 8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
                .ok_or("truncated state")
        };
        let n = body.get(48..52).ok_or("truncated state")?;
        let n = u32::from_le_bytes(n.try_into().unwrap()) as usize;
        if body.len() != 52 + 16 * n {
            return Err(format!("{} bytes for {n} terms", body.len()));
        }
        let history = (0..n)
            .map(|i| {
                Ok(TermSwitch {
                    term: Term(u64_at(52 + 16 * i)?),
                    lsn: Lsn(u64_at(60 + 16 * i)?),
                })
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        let voted = u64_at(16)?;
        Ok(Copy {
            seq: u64_at(0)?,
            state: SafekeeperState {
                term: Term(u64_at(8)?),
                voted_for: voted.checked_sub(1).map(ProposerId),
                term_history: TermHistory(history),
                commit_lsn: Lsn(u64_at(24)?),
                wal_start: Lsn(u64_at(32)?),
                wal_start_prev: Lsn(u64_at(40)?),
            },
        })
    }
}

/// What a safekeeper finds on its disk.
#[derive(Debug)]
pub enum Loaded {
    /// A verified state, with the sequence number of the persist that wrote it, and whether
    /// both copies hold it (if not, it must be written to both before it is acted on: a state
    /// in one copy is lost if that copy is).
    State(SafekeeperState, u64, bool),
    /// No state it can trust, and why: it must stay out of the quorum.
    Untrusted(String),
}

/// Picks the state from the copies' bytes (`None`: that copy could not be read at all).
fn choose(copies: [Option<Vec<u8>>; 2], trust_rot: bool) -> Loaded {
    let mut why = Vec::new();
    let mut best: Option<Copy> = None;
    let mut seqs = Vec::new();
    for (name, bytes) in COPIES.iter().zip(copies) {
        let decoded = match bytes {
            None => Err("missing or unreadable".to_string()),
            Some(b) => Copy::decode(&b, trust_rot),
        };
        match decoded {
            Ok(c) => {
                seqs.push(c.seq);
                if best.as_ref().is_none_or(|b| c.seq > b.seq) {
                    best = Some(c);
                }
            }
            Err(e) => why.push(format!("{name}: {e}")),
        }
    }
    let whole = seqs.len() == 2 && seqs[0] == seqs[1];
    match best {
        Some(c) => Loaded::State(c.state, c.seq, whole),
        None => Loaded::Untrusted(why.join("; ")),
    }
}

/// Reads the control file. A copy that cannot be read (EIO) is passed over if the other
/// verifies (it is the older only if the persist that wrote it never finished); if none
/// verifies, the read error is the answer (try again), not a verdict on the state.
pub async fn load(disk: &Disk, trust_rot: bool) -> Result<Loaded> {
    let mut copies = [None, None];
    let mut error = None;
    for (slot, name) in copies.iter_mut().zip(COPIES) {
        if disk.exists(name) {
            match disk.read_all(name).await {
                Ok(bytes) => *slot = Some(bytes),
                Err(e) => error = Some(e),
            }
        }
    }
    match (choose(copies, trust_rot), error) {
        (Loaded::Untrusted(_), Some(e)) => Err(e),
        (loaded, _) => Ok(loaded),
    }
}

/// The state a crash would leave on `disk` (for the harness, which judges a node's promises
/// against its disk): `None` when no copy verifies.
pub fn durable_state(disk: &Disk) -> Option<SafekeeperState> {
    match choose(COPIES.map(|n| disk.read_durable(n)), false) {
        Loaded::State(state, ..) => Some(state),
        Loaded::Untrusted(_) => None,
    }
}

/// Whether `name` is one of the control file's copies.
pub fn is_control_file(name: &str) -> bool {
    COPIES.contains(&name)
}

fn encode(seq: u64, state: &SafekeeperState) -> Vec<u8> {
    let copy = Copy {
        seq,
        state: state.clone(),
    };
    copy.encode()
}

/// Persists `state` as persist number `seq` (or, with the `control-file-unsynced` bug,
/// without its fsyncs). Copy 0 is durable before copy 1 is touched.
pub async fn persist(disk: &Disk, seq: u64, state: &SafekeeperState, unsynced: bool) -> Result<()> {
    let bytes = encode(seq, state);
    for name in COPIES {
        // In place: past a shorter body, stale bytes stay, and the header says where it ends.
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
            Loaded::State(s, ..) => Some(s.term.0),
            Loaded::Untrusted(_) => None,
        };
        assert_eq!(
            term(choose([Some(new.clone()), Some(old.clone())], false)),
            Some(2)
        );
        assert_eq!(
            term(choose([Some(old.clone()), Some(new.clone())], false)),
            Some(2)
        );
        let mut torn = new.clone();
        torn[20] ^= 1;
        assert_eq!(
            term(choose([Some(torn.clone()), Some(old.clone())], false)),
            Some(1)
        );
        assert_eq!(term(choose([None, Some(old)], false)), Some(1));
        match choose([Some(torn.clone()), None], false) {
            Loaded::Untrusted(why) => assert!(why.contains("checksum"), "{why}"),
            l => panic!("a rotted lone copy was trusted: {l:?}"),
        }
    }

    #[test]
    fn the_planted_bug_trusts_a_rotted_copy_that_still_parses() {
        let mut bytes = encode(3, &state(5));
        // The term's low bit: 5 -> 4, a lower term.
        bytes[HEADER + 8] ^= 1;
        assert!(matches!(
            choose([Some(bytes.clone()), None], false),
            Loaded::Untrusted(_)
        ));
        match choose([Some(bytes), None], true) {
            Loaded::State(s, ..) => assert_eq!(s.term, Term(4)),
            l => panic!("{l:?}"),
        }
    }
}
