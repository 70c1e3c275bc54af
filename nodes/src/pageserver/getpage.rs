//! GetPage@LSN: the newest image at or below the LSN plus the deltas after it; and the
//! basebackup, every page at an LSN, that a compute starts from.
//!
//! A request for an LSN not yet ingested waits, at most [`MAX_WAIT`], and then fails with an
//! error that says how far ingest got; it is never answered with older pages (unless the
//! `getpage-stale-lsn` bug is planted).
//!
//! An answer goes out once the cost model's time has passed: the layer reads, then the redo
//! in the one walredo process, which serves requests in turn (so long chains delay the reads
//! behind them); madsim cannot sleep under 1 ms, so a shorter time is reported but the answer
//! goes at once. Each answer is reported with its records, layers, bytes, its wait for
//! ingest and its latency.

use super::layers::ReadCost;
use super::Pageserver;
use crate::bugs::Bug;
use crate::ids::{Lsn, NodeId, PageId};
use crate::observe::Observation;
use crate::proto::{Basebackup, Message};
use std::sync::Arc;
use std::time::Duration;

pub const MAX_WAIT: Duration = Duration::from_secs(1);
const MAX_WAITERS: usize = 256;

/// A page's bytes and the records applied to build it, or why there is none.
type PageResult = Result<(Arc<Vec<u8>>, u32), String>;

/// What a request asks for at its LSN.
#[derive(Clone, Copy)]
pub(super) enum Request {
    Page(PageId),
    Basebackup,
}

struct Waiter {
    from: NodeId,
    request_id: u64,
    what: Request,
    lsn: Lsn,
    waited: Duration,
    /// When the request arrived: its latency counts the wait for ingest.
    arrived: madsim::time::Instant,
}

#[derive(Default)]
pub struct Waiters(Vec<Waiter>);

impl Waiters {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Pageserver {
    pub(super) fn on_request(&mut self, from: NodeId, request_id: u64, what: Request, lsn: Lsn) {
        let stale = matches!(what, Request::Page(_)) && self.cfg.bugs.has(Bug::GetpageStaleLsn);
        if lsn <= self.last_record_lsn() || stale {
            return self.answer(from, request_id, what, lsn, madsim::time::Instant::now());
        }
        if self.getpage.0.len() >= MAX_WAITERS {
            let why = "too many requests waiting for ingest";
            return self.fail(from, request_id, what, lsn, why);
        }
        crate::probe!(GetPageWaits);
        self.getpage.0.push(Waiter {
            from,
            request_id,
            what,
            lsn,
            waited: Duration::ZERO,
            arrived: madsim::time::Instant::now(),
        });
    }

    fn answer(
        &mut self,
        to: NodeId,
        request_id: u64,
        what: Request,
        lsn: Lsn,
        arrived: madsim::time::Instant,
    ) {
        let msg = match what {
            Request::Page(page) => {
                let (image, cost) = self.map.reconstruct(page, lsn);
                let delay = self.charge_read(&cost);
                let waited = arrived.elapsed();
                let result = Ok((Arc::new(image.as_bytes().to_vec()), cost.records));
                let served = Observation::GetPageServed {
                    page,
                    lsn,
                    records_applied: cost.records,
                    layers_visited: cost.layers,
                    bytes_read: cost.bytes,
                    latency_ns: delay.as_nanos() as u64,
                    wait_ns: waited.as_nanos() as u64,
                };
                self.cfg.observer.observe(self.cfg.id, served);
                let msg = page_response(request_id, page, lsn, result);
                return self.net.send_after(to, msg, delay);
            }
            Request::Basebackup => {
                let pages = self
                    .map
                    .pages_at(lsn)
                    .map(|p| {
                        (
                            p,
                            Arc::new(self.map.reconstruct(p, lsn).0.as_bytes().to_vec()),
                        )
                    })
                    .collect();
                let backup = Basebackup {
                    pages,
                    next_xid: self.map.max_xid() + 1,
                };
                Message::BasebackupResponse {
                    request_id,
                    lsn,
                    result: Ok(Arc::new(backup)),
                }
            }
        };
        self.net.send(to, msg);
    }

    /// The time from now until a read that cost `cost` is answered: its layer reads, then its
    /// turn at the walredo process and the redo itself.
    fn charge_read(&mut self, cost: &ReadCost) -> Duration {
        let c = &self.cfg.cost;
        let read = c.layer_visit * cost.layers
            + Duration::from_nanos((cost.bytes as f64 * c.ns_per_byte_read) as u64);
        let now = madsim::time::Instant::now();
        let mut done = now + read;
        if cost.records > 0 {
            let redo = c.walredo_fixed + c.walredo_per_record * cost.records;
            done = done.max(self.walredo_free) + redo;
            self.walredo_free = done;
        }
        done - now
    }

    fn fail(&self, to: NodeId, request_id: u64, what: Request, lsn: Lsn, why: &str) {
        let result = Err(why.to_string());
        let msg = match what {
            Request::Page(page) => page_response(request_id, page, lsn, result),
            Request::Basebackup => Message::BasebackupResponse {
                request_id,
                lsn,
                result: Err(why.to_string()),
            },
        };
        self.net.send(to, msg);
    }

    /// Answers the requests that ingest has caught up with.
    pub(super) fn answer_waiters(&mut self) {
        if self.getpage.0.is_empty() {
            return;
        }
        let ingested = self.last_record_lsn();
        let (ready, waiting): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.getpage.0)
            .into_iter()
            .partition(|w| w.lsn <= ingested);
        self.getpage.0 = waiting;
        for w in ready {
            self.answer(w.from, w.request_id, w.what, w.lsn, w.arrived);
        }
    }

    /// Fails the requests that waited too long.
    pub(super) fn expire_waiters(&mut self) {
        let ingested = self.last_record_lsn();
        for w in &mut self.getpage.0 {
            w.waited += super::TICK;
        }
        let (expired, waiting): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.getpage.0)
            .into_iter()
            .partition(|w| w.waited >= MAX_WAIT);
        self.getpage.0 = waiting;
        for w in expired {
            crate::probe!(GetPageWaitExpired);
            let why = format!(
                "LSN {} not yet ingested (ingested to {ingested}) after {:?}",
                w.lsn, MAX_WAIT
            );
            self.fail(w.from, w.request_id, w.what, w.lsn, &why);
        }
    }
}

fn page_response(request_id: u64, page: PageId, lsn: Lsn, result: PageResult) -> Message {
    Message::GetPageResponse {
        request_id,
        page,
        lsn,
        result,
    }
}
