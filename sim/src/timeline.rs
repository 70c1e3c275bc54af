//! The timeline of one run as a self-contained HTML page (`lakesim replay FILE --html OUT`): a
//! lane per node, messages as arrows from sender to receiver, faults, elections, commits and
//! reads as marks, the violation as a line across every lane and a banner; zoom, pan, a filter
//! by node and by kind of event, and an event's fields on a click.
//!
//! Guarantees: the page needs nothing but itself (no network, no CDN: the data and the script
//! are inline, the drawing is a canvas), and the run's events go in whole, in order.

use crate::checker::Violation;
use crate::plan::Role;
use crate::runner::RunOutcome;
use serde::Serialize;
use std::collections::BTreeMap;

const TEMPLATE: &str = include_str!("timeline.html");

#[derive(Serialize)]
struct Node {
    id: u32,
    name: String,
}

#[derive(Serialize)]
struct Data<'a> {
    title: &'a str,
    end_ns: u64,
    violation: Option<&'a Violation>,
    nodes: Vec<Node>,
    kinds: Vec<&'static str>,
    /// `[time_ns, node, kind index, a, b]`, in order.
    events: Vec<[u64; 5]>,
}

/// The page for `outcome`, which must hold its full trace.
pub fn render(title: &str, outcome: &RunOutcome) -> String {
    let trace = outcome.full_trace.as_deref().unwrap_or(&[]);
    let mut kind_index: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut kinds = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    let mut events = Vec::with_capacity(trace.len());
    for e in trace {
        let k = *kind_index.entry(e.kind).or_insert_with(|| {
            kinds.push(e.kind);
            kinds.len() as u64 - 1
        });
        ids.insert(e.node);
        events.push([e.time_ns, u64::from(e.node), k, e.a, e.b]);
    }
    let nodes = ids
        .into_iter()
        .map(|id| Node {
            id,
            name: match id {
                0 => "harness".to_string(),
                id => Role::of(id).name(),
            },
        })
        .collect();
    let data = Data {
        title,
        end_ns: outcome.sim_time.as_nanos() as u64,
        violation: outcome.violation.as_ref(),
        nodes,
        kinds,
        events,
    };
    let json = serde_json::to_string(&data).expect("plain data serialises");
    // Inside <script>, "</" could end the element early.
    let json = json.replace("</", "<\\/");
    TEMPLATE
        .replace("__TITLE__", &html_escape(title))
        .replace("__DATA__", &json)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use crate::runner::{run_seed, RunOptions};

    #[test]
    fn the_page_holds_every_event_and_loads_nothing() {
        let config = crate::scenario::find("calm").unwrap();
        let plan = Plan::generate(3, &config);
        let opts = RunOptions {
            keep_trace: true,
            ..RunOptions::default()
        };
        let outcome = run_seed(3, &plan, &opts);
        let page = render("calm </script> seed 3", &outcome);
        let n = outcome.full_trace.as_ref().unwrap().len();
        assert!(n > 1000);
        assert_eq!(page.matches("],[").count() + 1, n, "one array per event");
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains("calm </script>"), "the title is escaped");
    }
}
