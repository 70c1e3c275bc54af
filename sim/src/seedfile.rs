//! Seed files: one TOML file per seed worth keeping, in `seeds/` (the regression corpus) or
//! written by a campaign for each failure. A file says how to rebuild the run (seed, scenario
//! or config, planted bug), what must happen (pass, or fail with a named invariant) and the
//! trace hash it must reproduce, so any change in behaviour shows as a hash mismatch.

use crate::config::Config;
use crate::plan::{FaultEvent, FaultMix, Plan};
use crate::runner::{run_seed, RunOptions, RunOutcome};
use crate::scenario;
use anyhow::{bail, Context, Result};
use lakesim_nodes::bugs::{Bug, BugSet};
use lakesim_nodes::Invariant;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    Pass,
    Fail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// The lakesim version that wrote the file.
    #[serde(default)]
    pub lakesim_version: Option<String>,
    #[serde(with = "full_u64")]
    pub seed: u64,
    /// A named scenario; or else `config` holds the whole configuration.
    #[serde(default)]
    pub scenario: Option<String>,
    #[serde(default)]
    pub config: Option<Config>,
    #[serde(default)]
    pub bug: Option<String>,
    /// Overrides the scenario's `full_page_writes` (as `--full-page-writes` does).
    #[serde(default)]
    pub full_page_writes: Option<bool>,
    pub expect: Expect,
    /// With `expect = "fail"`: the invariant the run must violate.
    #[serde(default)]
    pub invariant: Option<Invariant>,
    /// With `expect = "fail"`: what caught it (`check NAME`, or a node's `assertion at
    /// FILE:LINE`); when given, the replay must be caught the same way.
    #[serde(default)]
    pub caught_by: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    /// 16 hex digits.
    pub trace_hash: String,
    /// A `budget` failure's limits, so that its replay is held to them (such a failure is
    /// bound to wall time or memory, so its trace hash is not compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetRecord>,
    /// The fault schedule the file runs. A campaign records the one the seed generated; a
    /// shrunk or hand-edited schedule runs as written. Without it, the seed's own schedule
    /// runs. The workload is left out: it is as long as the run and follows from the seed.
    #[serde(default)]
    pub plan: Option<FaultRecord>,
}

/// The per-seed budget a `budget` failure ran past.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetRecord {
    pub wall_ms: u64,
    pub memory_mib: u64,
}

/// A seed as TOML holds it: an integer up to `i64::MAX` (TOML's integers are 64-bit signed),
/// a decimal string above, so that every u64 seed is saved and read back exactly. Either form
/// is read.
pub mod full_u64 {
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(*v) {
            Ok(small) => s.serialize_i64(small),
            Err(_) => s.serialize_str(&v.to_string()),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        struct Seed;
        impl de::Visitor<'_> for Seed {
            type Value = u64;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a seed from 0 to 18446744073709551615 (above 2^63 as a quoted string)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
                u64::try_from(v).map_err(|_| E::custom(format!("seed {v} is negative; {}", RANGE)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                v.parse()
                    .map_err(|_| E::custom(format!("seed \"{v}\" is not a number; {}", RANGE)))
            }
        }
        d.deserialize_any(Seed)
    }

    const RANGE: &str = "a seed is 0 to 18446744073709551615";
}

/// The part of a [`Plan`] a seed file records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRecord {
    /// The client's work items, when fewer than the seed plans (a shrunk workload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_items: Option<u64>,
    pub faults_chosen: FaultMix,
    pub faults: Vec<FaultEvent>,
}

impl FaultRecord {
    pub fn of(plan: &Plan) -> FaultRecord {
        FaultRecord {
            work_items: plan.work_items,
            faults_chosen: plan.faults_chosen.clone(),
            faults: plan.faults.clone(),
        }
    }

    /// `plan` with this record's schedule and workload length, checked.
    pub fn apply(&self, plan: Plan) -> Result<Plan> {
        let mut plan = plan
            .with_faults(self.faults_chosen.clone(), self.faults.clone())
            .map_err(anyhow::Error::msg)?;
        plan.work_items = self.work_items;
        Ok(plan)
    }
}

/// A seed file made ready to run.
pub struct Loaded {
    pub file: SeedFile,
    pub config: Config,
    pub bugs: BugSet,
    pub plan: Plan,
}

impl SeedFile {
    pub fn load(path: &Path) -> Result<Loaded> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read seed file {}", path.display()))?;
        let file: SeedFile = toml::from_str(&text)
            .map_err(|e| crate::config::toml_error("seed file", path, &text, &e))?;
        file.prepare()
            .with_context(|| format!("seed file {}", path.display()))
    }

    fn prepare(self) -> Result<Loaded> {
        let config = match (&self.scenario, &self.config) {
            (Some(_), Some(_)) => bail!("give either scenario or config, not both"),
            (Some(name), None) => scenario::find(name)?,
            (None, Some(c)) => {
                c.validate()?;
                c.clone()
            }
            (None, None) => bail!("needs a scenario or a [config] table"),
        };
        let config = match self.full_page_writes {
            Some(on) => Config {
                full_page_writes: on,
                ..config
            },
            None => config,
        };
        let bugs = match &self.bug {
            Some(b) => BugSet::of([b.parse::<Bug>().map_err(anyhow::Error::msg)?]),
            None => BugSet::none(),
        };
        if self.trace_hash.len() != 16 || u64::from_str_radix(&self.trace_hash, 16).is_err() {
            bail!("trace_hash = {:?}: must be 16 hex digits", self.trace_hash);
        }
        if (self.expect == Expect::Fail) != self.invariant.is_some() {
            bail!("expect = \"fail\" needs the invariant it violates, and only it does");
        }
        if let Some(c) = &self.caught_by {
            check_catcher(c)?;
        }
        // The plan the file records is the plan it runs: a schedule shrunk or edited by hand
        // replays as written (its trace hash is pinned like any other).
        let plan = Plan::generate(self.seed, &config);
        let plan = match &self.plan {
            Some(p) => p.apply(plan)?,
            None => plan,
        };
        Ok(Loaded {
            file: self,
            config,
            bugs,
            plan,
        })
    }
}

/// How a replay went.
pub struct Replay {
    pub outcome: RunOutcome,
    /// The run did what the file expects (pass, or fail with its invariant).
    pub as_expected: bool,
    pub hash_matches: bool,
}

impl Loaded {
    pub fn replay(&self) -> Replay {
        self.replay_keeping(false)
    }

    /// [`Loaded::replay`], keeping every event of the run when `keep_trace`.
    pub fn replay_keeping(&self, keep_trace: bool) -> Replay {
        let limits = match &self.file.budget {
            Some(b) => crate::budget::Limits {
                wall: Some(std::time::Duration::from_millis(b.wall_ms)),
                memory_bytes: Some(b.memory_mib << 20),
                stop: None,
            },
            None => crate::budget::Limits::default(),
        };
        let opts = RunOptions {
            bugs: self.bugs.clone(),
            keep_trace,
            limits,
        };
        let nondeterminism = self.file.invariant == Some(Invariant::Nondeterminism);
        let outcome = match nondeterminism {
            true => crate::determinism::run_twice(self.file.seed, &self.plan, &opts),
            false => run_seed(self.file.seed, &self.plan, &opts),
        };
        let as_expected = match (&self.file.expect, &outcome.violation) {
            (Expect::Pass, None) => true,
            (Expect::Fail, Some(v)) => {
                self.file.invariant == Some(v.invariant)
                    && self
                        .file
                        .caught_by
                        .as_ref()
                        .is_none_or(|c| same_catcher(c, &v.caught_by))
            }
            _ => false,
        };
        let hash_matches = self.file.invariant == Some(Invariant::Budget)
            || nondeterminism
            || format!("{:016x}", outcome.trace_hash) == self.file.trace_hash;
        Replay {
            outcome,
            as_expected,
            hash_matches,
        }
    }
}

/// A seed file recording `outcome`.
pub fn record(
    seed: u64,
    scenario: Option<&str>,
    config: Option<&Config>,
    bug: Option<&str>,
    full_page_writes: bool,
    plan: Option<&Plan>,
    outcome: &RunOutcome,
) -> SeedFile {
    SeedFile {
        lakesim_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        seed,
        scenario: scenario.map(str::to_string),
        config: config.cloned(),
        bug: bug.map(str::to_string),
        full_page_writes: full_page_writes.then_some(true),
        expect: if outcome.violation.is_some() {
            Expect::Fail
        } else {
            Expect::Pass
        },
        invariant: outcome.violation.as_ref().map(|v| v.invariant),
        caught_by: outcome.violation.as_ref().map(|v| v.caught_by.clone()),
        detail: outcome.violation.as_ref().map(|v| v.detail.clone()),
        trace_hash: format!("{:016x}", outcome.trace_hash),
        budget: None,
        plan: plan.map(FaultRecord::of),
    }
}

/// A `caught_by` must name a known check, or an assertion, a panic, madsim's time limit or a
/// budget: a typo would make a replay fail for the wrong reason.
fn check_catcher(c: &str) -> Result<()> {
    if let Some(name) = c.strip_prefix("check ") {
        if crate::checker::Check::ALL.iter().any(|k| k.name() == name) {
            return Ok(());
        }
        let names: Vec<&str> = crate::checker::Check::ALL
            .iter()
            .map(|k| k.name())
            .collect();
        bail!(
            "caught_by = {c:?}: no check named {name:?}; checks are {}",
            names.join(", ")
        );
    }
    let known = [
        "assertion at ",
        "panic at ",
        "time limit",
        "budget ",
        crate::determinism::CAUGHT_BY,
    ];
    if known.iter().any(|k| c.starts_with(k)) {
        return Ok(());
    }
    bail!("caught_by = {c:?}: expected \"check NAME\", \"assertion at FILE:LINE\", \"panic at FILE:LINE\", \"time limit\", \"budget ...\" or \"{}\"", crate::determinism::CAUGHT_BY)
}

/// True when two `caught_by` texts name the same check, or the same assertion in the same
/// file (an assertion's line moves with every edit above it; `lakesim pin` refreshes it).
pub fn same_catcher(a: &str, b: &str) -> bool {
    let file = |s: &str| match s.rsplit_once(':') {
        Some((f, line)) if line.chars().all(|c| c.is_ascii_digit()) => f.to_string(),
        _ => s.to_string(),
    };
    file(a) == file(b)
}

/// Writes `file` to `path`, a name that must be new: whole or not at all, durably, and never
/// over an existing file (see [`crate::files`]).
pub fn save(path: &Path, file: &SeedFile) -> Result<()> {
    let text = toml::to_string(file).context("seed file serialises")?;
    crate::files::write_new(path, text.as_bytes())
}
