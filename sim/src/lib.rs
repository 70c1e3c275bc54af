//! The lakesim harness: configs and scenarios, plan generation, the cluster, the checkers, the
//! runner, and the command line.

pub mod campaign;
pub mod checker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod oracle;
pub mod plan;
pub mod runner;
pub mod scenario;
pub mod seedfile;
