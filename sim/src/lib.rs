//! The lakesim harness: configs and scenarios, plan generation, the cluster, the checkers, the
//! runner, and the command line.

pub mod campaign;
pub mod checker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod experiment;
pub mod metrics;
pub mod oracle;
pub mod pgtrace;
pub mod plan;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod seedfile;
pub mod tpcb;
