//! GetPage@LSN: the newest image at or below the LSN plus the deltas after it.
//!
//! A request for an LSN not yet ingested waits, at most [`MAX_WAIT`], and then fails with an
//! error that says how far ingest got; it is never answered with an older page (unless the
//! `getpage-stale-lsn` bug is planted).

use super::Pageserver;
use crate::bugs::Bug;
use crate::ids::{Lsn, NodeId, PageId};
use crate::proto::Message;
use std::sync::Arc;
use std::time::Duration;

pub const MAX_WAIT: Duration = Duration::from_secs(1);
const MAX_WAITERS: usize = 256;

/// A page's bytes and the records applied to build it, or why there is none.
type PageResult = Result<(Arc<Vec<u8>>, u32), String>;

struct Waiter {
    from: NodeId,
    request_id: u64,
    page: PageId,
    lsn: Lsn,
    waited: Duration,
}

#[derive(Default)]
pub struct Waiters(Vec<Waiter>);

impl Pageserver {
    pub(super) fn on_get_page(&mut self, from: NodeId, request_id: u64, page: PageId, lsn: Lsn) {
        if lsn <= self.last_record_lsn() || self.cfg.bugs.has(Bug::GetpageStaleLsn) {
            return self.answer(from, request_id, page, lsn);
        }
        if self.getpage.0.len() >= MAX_WAITERS {
            return self.fail(
                from,
                request_id,
                page,
                lsn,
                "too many requests waiting for ingest",
            );
        }
        self.getpage.0.push(Waiter {
            from,
            request_id,
            page,
            lsn,
            waited: Duration::ZERO,
        });
    }

    fn answer(&self, to: NodeId, request_id: u64, page: PageId, lsn: Lsn) {
        let (image, applied) = self.map.reconstruct(page, lsn);
        self.reply(
            to,
            request_id,
            page,
            lsn,
            Ok((Arc::new(image.as_bytes().to_vec()), applied)),
        );
    }

    fn fail(&self, to: NodeId, request_id: u64, page: PageId, lsn: Lsn, why: &str) {
        self.reply(to, request_id, page, lsn, Err(why.to_string()));
    }

    fn reply(&self, to: NodeId, request_id: u64, page: PageId, lsn: Lsn, result: PageResult) {
        self.net.send(
            to,
            Message::GetPageResponse {
                request_id,
                page,
                lsn,
                result,
            },
        );
    }

    /// Answers the requests that ingest has caught up with.
    pub(super) fn answer_waiters(&mut self) {
        let ingested = self.last_record_lsn();
        let (ready, waiting): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.getpage.0)
            .into_iter()
            .partition(|w| w.lsn <= ingested);
        self.getpage.0 = waiting;
        for w in ready {
            self.answer(w.from, w.request_id, w.page, w.lsn);
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
            let why = format!(
                "LSN {} not yet ingested (ingested to {ingested}) after {:?}",
                w.lsn, MAX_WAIT
            );
            self.fail(w.from, w.request_id, w.page, w.lsn, &why);
        }
    }
}
