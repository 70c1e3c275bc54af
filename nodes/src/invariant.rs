//! The invariants of DESIGN §5, as one type shared by the harness's checkers and the
//! assertions inside node code.
//!
//! A node asserts an invariant where it is established with [`invariant!`]: when the condition
//! fails, the panic carries a typed [`Broken`] payload (never a string to parse), and the
//! harness reports it as that invariant, with the assertion's file and line. Any other panic
//! is reported as [`Invariant::Panic`]: a crash is a failure too, just not a named one.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One invariant, or a panic outside any assertion of one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// Every acknowledged commit, its writes included, survives any fault the design covers.
    Durability,
    /// Acceptors agree on the committed WAL; terms and commit LSNs never go back; one
    /// proposer per term.
    WalAgreement,
    /// Every page served equals the replay of the committed WAL at the LSN asked for.
    PageReconstruction,
    /// A torn or rotted file is detected by checksum and never served as data.
    NoCorruptPage,
    /// Once faults heal, commits resume, every pageserver catches up and answers, uploads
    /// catch up and safekeepers shed their WAL.
    Liveness,
    /// A GetPage applies no more records than the image policy promises: the design's cost
    /// bound, as much a promise as the others.
    ReadAmplification,
    /// Node code panicked outside any invariant's assertion.
    Panic,
    /// The seed ran past its per-seed budget of wall time or memory: a runaway run (a livelock,
    /// a configuration too big for the machine), recorded so that a campaign goes on.
    Budget,
    /// Two runs of one seed in one process did different things (a different trace hash):
    /// the determinism lakesim's replays rest on is broken.
    Nondeterminism,
}

impl Invariant {
    /// The invariants (everything but [`Invariant::Panic`]).
    pub const CHECKED: [Invariant; 6] = [
        Invariant::Durability,
        Invariant::WalAgreement,
        Invariant::PageReconstruction,
        Invariant::NoCorruptPage,
        Invariant::Liveness,
        Invariant::ReadAmplification,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invariant::Durability => "durability",
            Invariant::WalAgreement => "wal-agreement",
            Invariant::PageReconstruction => "page-reconstruction",
            Invariant::NoCorruptPage => "no-corrupt-page",
            Invariant::Liveness => "liveness",
            Invariant::ReadAmplification => "read-amplification",
            Invariant::Panic => "panic",
            Invariant::Budget => "budget",
            Invariant::Nondeterminism => "nondeterminism",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Invariant {
    type Err = String;

    fn from_str(s: &str) -> Result<Invariant, String> {
        let all = Invariant::CHECKED.into_iter().chain([
            Invariant::Panic,
            Invariant::Budget,
            Invariant::Nondeterminism,
        ]);
        all.clone().find(|i| i.name() == s).ok_or_else(|| {
            let names: Vec<&str> = all.map(Invariant::name).collect();
            format!(
                "unknown invariant '{s}'; known invariants: {}",
                names.join(", ")
            )
        })
    }
}

/// The payload of a node assertion's panic: which invariant broke, how, and where the
/// assertion is (`file:line`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub invariant: Invariant,
    pub detail: String,
    pub at: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// Panics with a [`Broken`] payload naming the caller's location.
#[track_caller]
pub fn broken(invariant: Invariant, detail: String) -> ! {
    let here = std::panic::Location::caller();
    let at = format!("{}:{}", here.file(), here.line());
    std::panic::panic_any(Broken {
        invariant,
        detail,
        at,
    })
}

/// Asserts an invariant in node code: `invariant!(Invariant::WalAgreement, cond, "fmt", args..)`.
#[macro_export]
macro_rules! invariant {
    ($inv:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            $crate::invariant::broken($inv, format!($($fmt)+))
        }
    };
}

/// For tests of node code: runs `f` and returns the invariant its assertion broke.
pub fn catch_broken(f: impl FnOnce() + std::panic::UnwindSafe) -> Option<Broken> {
    let payload = std::panic::catch_unwind(f).err()?;
    payload.downcast::<Broken>().ok().map(|b| *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assertion_carries_its_invariant() {
        let caught = catch_broken(|| {
            let lsn = 3;
            invariant!(Invariant::WalAgreement, lsn < 2, "lsn {lsn} too far");
        });
        let caught = caught.expect("the assertion fails");
        assert_eq!(caught.invariant, Invariant::WalAgreement);
        assert_eq!(caught.detail, "lsn 3 too far");
        assert!(
            caught.at.starts_with("nodes/src/invariant.rs:"),
            "{}",
            caught.at
        );
        assert_eq!(
            catch_broken(|| invariant!(Invariant::Liveness, true, "no")),
            None
        );
    }

    #[test]
    fn names_round_trip() {
        for i in Invariant::CHECKED {
            assert_eq!(i.name().parse::<Invariant>(), Ok(i));
        }
        assert!("durable"
            .parse::<Invariant>()
            .unwrap_err()
            .contains("durability"));
    }
}
