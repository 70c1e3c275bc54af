//! `lakesim report merge`: the shards of one campaign, run on many machines, as one report.
//!
//! Reads each shard's directory (manifest, `seeds.jsonl`, `summary.json`) and writes to `--out`
//! a merged `summary.json`, `junit.xml`, `report.md` and `report.html` (static, no script):
//! failures grouped by invariant and check, each with its smallest seed and replay command;
//! seeds/s per shard; the shards that are missing or incomplete; and, given a previous night's
//! merged summary, the groups that are new or gone since.
//!
//! Guarantees: shards of different campaigns are refused, as is a shard given twice; a shard
//! that is missing, has no summary (killed) or ran fewer seeds than it planned is reported as
//! such and never silently merged as complete; seeds are merged by seed, in order.

use crate::campaign::Shard;
use crate::outdir::{read_manifest, read_seed_lines, Manifest, SeedLine, SEEDS_LOG, SUMMARY};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One shard as found on disk.
struct ShardDir {
    dir: PathBuf,
    shard: Shard,
    lines: Vec<SeedLine>,
    planned: Option<u64>,
    summary: Option<serde_json::Value>,
}

/// What a shard's state is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardStatus {
    pub shard: String,
    pub dir: String,
    pub seeds_run: u64,
    pub seeds_planned: Option<u64>,
    pub seeds_per_second: Option<f64>,
    /// Why it is incomplete; none when complete.
    pub incomplete: Option<String>,
}

/// Failures of one invariant caught by one check.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Group {
    pub invariant: String,
    /// The check, or the assertion's file (its line moves with edits).
    pub check: String,
    pub seeds: u64,
    pub smallest_seed: u64,
    pub replay: String,
}

/// The merged summary (`summary.json` of the merged report).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Merged {
    pub scenario: String,
    pub bug: Option<String>,
    pub start_seed: u64,
    pub shards: u64,
    pub seeds_planned: Option<u64>,
    pub seeds_run: u64,
    pub failures: u64,
    pub complete: bool,
    pub missing_shards: Vec<String>,
    pub shard_status: Vec<ShardStatus>,
    pub groups: Vec<Group>,
    /// Against `--previous`: groups new tonight, and groups gone.
    pub new_groups: Vec<String>,
    pub gone_groups: Vec<String>,
}

/// Merges the shard directories `dirs` into `out`.
pub fn merge(dirs: &[PathBuf], out: &Path, previous: Option<&Path>) -> Result<Merged> {
    if dirs.is_empty() {
        bail!("report merge: give one or more campaign directories");
    }
    let previous = previous.map(read_previous).transpose()?;
    let (manifest, shards) = read_shards(dirs)?;
    let merged = build(&manifest, &shards, previous.as_ref())?;
    write(out, &merged, &shards)?;
    Ok(merged)
}

fn read_previous(path: &Path) -> Result<Merged> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--previous {}: cannot read it", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "--previous {}: not a merged summary.json from lakesim report merge",
            path.display()
        )
    })
}

fn read_shards(dirs: &[PathBuf]) -> Result<(Manifest, Vec<ShardDir>)> {
    let mut first: Option<Manifest> = None;
    let mut shards: Vec<ShardDir> = Vec::new();
    for dir in dirs {
        let m = read_manifest(dir)?.with_context(|| {
            format!(
                "{}: no campaign.json: not a lakesim campaign directory",
                dir.display()
            )
        })?;
        let shard: Shard = m.shard.parse().map_err(anyhow::Error::msg)?;
        if let Some(f) = &first {
            let same = f.scenario == m.scenario
                && f.config == m.config
                && f.bug == m.bug
                && f.full_page_writes == m.full_page_writes
                && f.start_seed == m.start_seed
                && f.seeds == m.seeds
                && f.shard.split('/').nth(1) == m.shard.split('/').nth(1);
            if !same {
                bail!(
                    "{}: a shard of another campaign (scenario {}, shard {}); the first directory ran scenario {}, shard {}",
                    dir.display(),
                    m.scenario,
                    m.shard,
                    f.scenario,
                    f.shard
                );
            }
        }
        if let Some(twice) = shards.iter().find(|s| s.shard == shard) {
            bail!(
                "{} and {} both hold shard {shard}",
                twice.dir.display(),
                dir.display()
            );
        }
        let summary = std::fs::read_to_string(dir.join(SUMMARY))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        shards.push(ShardDir {
            dir: dir.clone(),
            shard,
            lines: read_seed_lines(&dir.join(SEEDS_LOG))?,
            planned: m.seeds.map(|n| seeds_of_shard(n, shard)),
            summary,
        });
        first.get_or_insert(m);
    }
    shards.sort_by_key(|s| s.shard.index);
    Ok((first.expect("at least one directory"), shards))
}

/// How many of a campaign's `seeds` shard `s` runs (as the campaign splits them).
fn seeds_of_shard(seeds: u64, s: Shard) -> u64 {
    let k = s.index - 1;
    seeds / s.count + u64::from(seeds % s.count > k)
}

fn status(s: &ShardDir) -> ShardStatus {
    let run = s.lines.len() as u64;
    let complete_flag = s
        .summary
        .as_ref()
        .and_then(|v| v["complete"].as_bool())
        .unwrap_or(false);
    let incomplete = match (&s.summary, s.planned) {
        (None, _) => Some("no summary.json: the shard was stopped before it ended".to_string()),
        (_, Some(p)) if run < p => Some(format!("ran {run} of its {p} seeds")),
        (Some(v), _) if !complete_flag => Some(
            v["stopped_by"]
                .as_str()
                .map_or("its summary says it is not complete".to_string(), |r| {
                    format!("stopped early: {r}")
                }),
        ),
        _ => None,
    };
    ShardStatus {
        shard: s.shard.to_string(),
        dir: s.dir.display().to_string(),
        seeds_run: run,
        seeds_planned: s.planned,
        seeds_per_second: s
            .summary
            .as_ref()
            .and_then(|v| v["seeds_per_second"].as_f64()),
        incomplete,
    }
}

/// The key a failure is grouped by: its invariant and its check (an assertion without its
/// line number).
fn group_key(line: &SeedLine) -> (String, String) {
    let check = line.check.clone().unwrap_or_default();
    let check = match check.rsplit_once(':') {
        Some((file, n)) if n.chars().all(|c| c.is_ascii_digit()) => file.to_string(),
        _ => check,
    };
    (line.invariant.clone().unwrap_or_default(), check)
}

fn build(m: &Manifest, shards: &[ShardDir], previous: Option<&Merged>) -> Result<Merged> {
    let count = shards[0].shard.count;
    let missing: Vec<String> = (1..=count)
        .filter(|k| !shards.iter().any(|s| s.shard.index == *k))
        .map(|k| format!("{k}/{count}"))
        .collect();
    let statuses: Vec<ShardStatus> = shards.iter().map(status).collect();
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    let mut seeds_run = 0;
    for s in shards {
        for line in &s.lines {
            seeds_run += 1;
            if line.result != "fail" {
                continue;
            }
            let key = group_key(line);
            let replay = line
                .file
                .as_ref()
                .map_or("(its failure file could not be saved)".to_string(), |f| {
                    format!("lakesim replay {}", s.dir.join(f).display())
                });
            let g = groups.entry(key.clone()).or_insert_with(|| Group {
                invariant: key.0.clone(),
                check: key.1.clone(),
                seeds: 0,
                smallest_seed: line.seed,
                replay: replay.clone(),
            });
            g.seeds += 1;
            if line.seed <= g.smallest_seed {
                g.smallest_seed = line.seed;
                g.replay = replay;
            }
        }
    }
    let names = |gs: &mut dyn Iterator<Item = &Group>| -> Vec<String> {
        gs.map(|g| format!("{} / {}", g.invariant, g.check))
            .collect()
    };
    let now = names(&mut groups.values());
    let (new_groups, gone_groups) = match previous {
        Some(p) => {
            let before = names(&mut p.groups.iter());
            (
                now.iter()
                    .filter(|g| !before.contains(g))
                    .cloned()
                    .collect(),
                before
                    .iter()
                    .filter(|g| !now.contains(g))
                    .cloned()
                    .collect(),
            )
        }
        None => (vec![], vec![]),
    };
    let complete = missing.is_empty() && statuses.iter().all(|s| s.incomplete.is_none());
    Ok(Merged {
        scenario: m.scenario.clone(),
        bug: m.bug.clone(),
        start_seed: m.start_seed,
        shards: count,
        seeds_planned: m.seeds,
        seeds_run,
        failures: groups.values().map(|g| g.seeds).sum(),
        complete,
        missing_shards: missing,
        shard_status: statuses,
        groups: groups.into_values().collect(),
        new_groups,
        gone_groups,
    })
}

fn write(out: &Path, merged: &Merged, shards: &[ShardDir]) -> Result<()> {
    if out.exists()
        && std::fs::read_dir(out)
            .with_context(|| format!("cannot read --out {}", out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "--out {}: exists and is not empty; choose another, nothing there is overwritten",
            out.display()
        );
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create --out {}", out.display()))?;
    let json = serde_json::to_string_pretty(merged)? + "\n";
    crate::files::write_new(&out.join("summary.json"), json.as_bytes())?;
    let dirs: Vec<String> = shards.iter().map(|s| s.dir.display().to_string()).collect();
    let statuses = &merged.shard_status;
    let suites: Vec<crate::junit::Suite> = shards
        .iter()
        .zip(statuses)
        .zip(&dirs)
        .map(|((s, st), dir)| crate::junit::Suite {
            name: format!("lakesim fuzz {} shard {}", merged.scenario, s.shard),
            scenario: &merged.scenario,
            lines: &s.lines,
            dir,
            incomplete: st.incomplete.clone(),
            wall: Duration::from_secs_f64(
                s.summary
                    .as_ref()
                    .and_then(|v| v["wall_seconds"].as_f64())
                    .unwrap_or(0.0),
            ),
        })
        .collect();
    let xml = crate::junit::render("lakesim nightly", &suites)?;
    crate::files::write_new(&out.join("junit.xml"), xml.as_bytes())?;
    let md = markdown(merged);
    crate::files::write_new(&out.join("report.md"), md.as_bytes())?;
    crate::files::write_new(&out.join("report.html"), html(merged).as_bytes())?;
    Ok(())
}

/// The human report, as markdown.
pub fn markdown(m: &Merged) -> String {
    let mut s = format!(
        "# lakesim campaign: {}{}\n\n",
        m.scenario,
        m.bug
            .as_ref()
            .map(|b| format!(", planted bug {b}"))
            .unwrap_or_default()
    );
    s += &format!(
        "{} seeds run{} from seed {} in {} shards, {} failed. **{}**\n\n",
        m.seeds_run,
        m.seeds_planned
            .map(|n| format!(" of {n}"))
            .unwrap_or_default(),
        m.start_seed,
        m.shards,
        m.failures,
        if m.complete {
            "Complete."
        } else {
            "INCOMPLETE: see the shards below."
        }
    );
    s += "## Failures by invariant and check\n\n";
    if m.groups.is_empty() {
        s += "None.\n\n";
    } else {
        s += "| invariant | check | seeds | smallest seed | replay |\n|---|---|---:|---:|---|\n";
        for g in &m.groups {
            s += &format!(
                "| {} | {} | {} | {} | `{}` |\n",
                g.invariant, g.check, g.seeds, g.smallest_seed, g.replay
            );
        }
        s += "\n";
    }
    if !m.new_groups.is_empty() || !m.gone_groups.is_empty() {
        s += "## Since the previous report\n\n";
        for g in &m.new_groups {
            s += &format!("- new: {g}\n");
        }
        for g in &m.gone_groups {
            s += &format!("- gone: {g}\n");
        }
        s += "\n";
    }
    s += "## Shards\n\n| shard | seeds run | planned | seeds/s | state | directory |\n|---|---:|---:|---:|---|---|\n";
    for st in &m.shard_status {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            st.shard,
            st.seeds_run,
            st.seeds_planned.map_or("-".into(), |n| n.to_string()),
            st.seeds_per_second
                .map_or("-".into(), |r| format!("{r:.1}")),
            st.incomplete
                .as_ref()
                .map_or("complete".to_string(), |i| format!("INCOMPLETE: {i}")),
            st.dir
        );
    }
    for k in &m.missing_shards {
        s += &format!("| {k} | - | - | - | MISSING: no directory given | - |\n");
    }
    s
}

/// The human report as a static page (no script, no network).
fn html(m: &Merged) -> String {
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut body = String::new();
    for line in markdown(m).lines() {
        if let Some(h) = line.strip_prefix("# ") {
            body += &format!("<h1>{}</h1>\n", esc(h));
        } else if let Some(h) = line.strip_prefix("## ") {
            body += &format!("<h2>{}</h2>\n", esc(h));
        } else if line.starts_with("|---") {
            continue;
        } else if let Some(row) = line.strip_prefix('|') {
            let cells: Vec<String> = row
                .trim_end_matches('|')
                .split(" | ")
                .map(|c| format!("<td>{}</td>", esc(c.trim().trim_matches('`'))))
                .collect();
            body += &format!("<tr>{}</tr>\n", cells.join(""));
        } else if let Some(item) = line.strip_prefix("- ") {
            body += &format!("<p>• {}</p>\n", esc(item));
        } else if !line.is_empty() {
            body += &format!("<p>{}</p>\n", esc(&line.replace("**", "")));
        }
    }
    let body = body.replace("</h2>\n<tr>", "</h2>\n<table><tr>");
    let body = body.replace("</tr>\n<h", "</tr></table>\n<h");
    let body = if body.trim_end().ends_with("</tr>") {
        body + "</table>\n"
    } else {
        body
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>lakesim report: {}</title>\n<style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}td{{border:1px solid #ccc;padding:3px 8px}}tr:first-child td{{font-weight:600;background:#f3f3f3}}</style></head><body>\n{body}</body></html>\n",
        esc(&m.scenario)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_a_campaign_exactly() {
        for (seeds, n) in [(400, 4), (7, 3), (1, 5), (0, 2)] {
            let total: u64 = (1..=n)
                .map(|k| seeds_of_shard(seeds, Shard { index: k, count: n }))
                .sum();
            assert_eq!(total, seeds);
        }
    }

    #[test]
    fn an_assertion_is_grouped_by_its_file() {
        let line = SeedLine {
            seed: 1,
            scenario: "storm".into(),
            bug: None,
            result: "fail".into(),
            invariant: Some("durability".into()),
            check: Some("assertion at nodes/src/x.rs:12".into()),
            trace_hash: "0".repeat(16),
            wall_ms: 1,
            simulated_ms: 1,
            events: 1,
            peak_mib: 1.0,
            probes: vec![],
            file: None,
        };
        assert_eq!(group_key(&line).1, "assertion at nodes/src/x.rs");
    }
}
