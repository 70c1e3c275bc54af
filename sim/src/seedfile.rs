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
    /// The fault schedule as it was run: a record for the reader (the run is rebuilt from seed
    /// and config, and the two must agree). The workload is left out: it is as long as the run
    /// and follows from the seed alone.
    #[serde(default)]
    pub plan: Option<FaultRecord>,
}

/// The part of a [`Plan`] a seed file records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRecord {
    pub faults_chosen: FaultMix,
    pub faults: Vec<FaultEvent>,
}

impl FaultRecord {
    pub fn of(plan: &Plan) -> FaultRecord {
        FaultRecord {
            faults_chosen: plan.faults_chosen.clone(),
            faults: plan.faults.clone(),
        }
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
        let file: SeedFile = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "seed file {}: {}",
                path.display(),
                e.message().replace('\n', " ")
            )
        })?;
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
        let plan = Plan::generate(self.seed, &config);
        if self
            .plan
            .as_ref()
            .is_some_and(|p| *p != FaultRecord::of(&plan))
        {
            bail!("its plan differs from the plan this lakesim makes for the seed; re-pin it");
        }
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
        let opts = RunOptions {
            bugs: self.bugs.clone(),
            keep_trace: false,
        };
        let outcome = run_seed(self.file.seed, &self.plan, &opts);
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
        let hash_matches = format!("{:016x}", outcome.trace_hash) == self.file.trace_hash;
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
        plan: plan.map(FaultRecord::of),
    }
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

/// Writes `file` to `path` atomically (temp file + rename), so a crash or Ctrl-C never leaves
/// half a seed file, and an existing file is only ever replaced whole.
pub fn save(path: &Path, file: &SeedFile) -> Result<()> {
    let text = toml::to_string(file).context("seed file serialises")?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
