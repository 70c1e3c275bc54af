//! JUnit XML for CI dashboards: a test case per failing seed, named by its seed, failing with
//! its invariant and check and carrying its replay command, and one test case for the campaign
//! (or for each shard of a merged one) that fails when seeds failed or seeds are missing.

use crate::outdir::SeedLine;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// One campaign (or shard) as JUnit sees it.
pub struct Suite<'a> {
    /// `lakesim fuzz storm shard 2/4`.
    pub name: String,
    pub scenario: &'a str,
    pub lines: &'a [SeedLine],
    /// The directory failure files are in, as the replay command should name it.
    pub dir: &'a str,
    /// Why the campaign is not complete, if it is not.
    pub incomplete: Option<String>,
    pub wall: Duration,
}

/// The XML for `suites`.
pub fn render(report_name: &str, suites: &[Suite]) -> anyhow::Result<String> {
    let mut report = Report::new(report_name);
    for s in suites {
        report.add_test_suite(suite(s));
    }
    Ok(report.to_string()?)
}

fn suite(s: &Suite) -> TestSuite {
    let mut suite = TestSuite::new(s.name.clone());
    suite.set_time(s.wall);
    let classname = format!("lakesim.{}", s.scenario);
    let failing: Vec<&SeedLine> = s.lines.iter().filter(|l| l.result == "fail").collect();
    for line in &failing {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status.set_message(format!(
            "{} caught by {}",
            line.invariant.as_deref().unwrap_or("?"),
            line.check.as_deref().unwrap_or("?")
        ));
        status.set_type(line.invariant.clone().unwrap_or_default());
        let replay = match &line.file {
            Some(f) => format!("lakesim replay {}/{f}", s.dir),
            None => "(the failure file could not be saved)".to_string(),
        };
        status.set_description(format!(
            "seed {} failed: {} caught by {}\nreplay: {replay}",
            line.seed,
            line.invariant.as_deref().unwrap_or("?"),
            line.check.as_deref().unwrap_or("?")
        ));
        let mut case = TestCase::new(format!("seed {}", line.seed), status);
        case.set_classname(classname.clone());
        case.set_time(Duration::from_millis(line.wall_ms));
        suite.add_test_case(case);
    }
    let status = match (&s.incomplete, failing.len()) {
        (None, 0) => TestCaseStatus::success(),
        (incomplete, n) => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let mut why = Vec::new();
            if n > 0 {
                why.push(format!("{n} of {} seeds failed", s.lines.len()));
            }
            if let Some(i) = incomplete {
                why.push(format!("incomplete: {i}"));
            }
            status.set_message(why.join("; "));
            status
        }
    };
    let mut case = TestCase::new(format!("campaign ({} seeds)", s.lines.len()), status);
    case.set_classname(classname);
    case.set_time(s.wall);
    suite.add_test_case(case);
    suite
}
