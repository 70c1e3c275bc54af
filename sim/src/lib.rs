//! The lakesim harness: configs and scenarios, plan generation, the cluster, the checkers, the
//! runner, and the command line.

pub mod bench;
pub mod budget;
pub mod campaign;
pub mod checker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod determinism;
pub mod experiment;
pub mod files;
pub mod junit;
pub mod merge;
pub mod metrics;
pub mod oracle;
pub mod outdir;
pub mod pgtrace;
pub mod plan;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod seedfile;
pub mod shrink;
pub mod timeline;
pub mod tpcb;

/// Every allocation is counted per thread, so that a campaign can hold each seed to a memory
/// budget (see [`budget`]).
#[global_allocator]
static ALLOCATOR: budget::Counting = budget::Counting;
