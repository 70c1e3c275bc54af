//! How a node process ends itself: on an I/O error it cannot survive honestly (a failed fsync,
//! a file it needs and cannot read), it does what Postgres learned to do after fsyncgate:
//! PANIC and start again from what its disk holds, never retry and trust. Its supervisor
//! (systemd's `Restart=always` with `RestartSec`, a Kubernetes pod) starts it again after
//! [`RESTART_BACKOFF`], so that an error that persists (an unreadable sector) makes a slow
//! crash loop rather than a busy one.
//!
//! In the simulation a process is a madsim node: [`abort`] kills every task of the node and
//! runs its start-up again. The disk is not crashed (the kernel's page cache outlives a process),
//! so what the node wrote and did not sync is still there, unless the failed fsync dropped it.

use crate::ids::NodeId;
use crate::observe::{Observation, Observer};
use std::time::Duration;

/// How long the supervisor waits before starting a process that ended itself.
pub const RESTART_BACKOFF: Duration = Duration::from_millis(100);

/// Ends this process after `error`, which it cannot survive, and restarts it from disk. Never
/// returns.
pub async fn abort(me: NodeId, observer: &dyn Observer, error: &std::io::Error) -> ! {
    crate::probe!(ProcessAborted);
    observer.observe(me, Observation::Aborted);
    tracing::warn!(node = %me, %error, "aborting: restart from disk");
    // The process is dead from here on: its caller never resumes, and its other tasks end
    // with the kill below.
    madsim::time::sleep(RESTART_BACKOFF).await;
    let handle = madsim::runtime::Handle::current();
    let node = madsim::plugin::node();
    handle.kill(node);
    handle.restart(node);
    std::future::pending().await
}
