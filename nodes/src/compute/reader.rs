//! The client's reads: GetPage@LSN against the pageservers, at the latest commit LSN and at
//! older acknowledged ones. The compute does not judge the pages; it reports each one (its
//! CRC, whether its own checksum held, how many records the pageserver applied) to the
//! observer, where the oracle checks it.

use crate::ids::{Lsn, NodeId, PageId};
use crate::net::Net;
use crate::observe::{Observation, Observer};
use crate::page::Page;
use crate::proto::Message;
use rand::Rng;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

const MAX_IN_FLIGHT: usize = 8;
const GIVE_UP_AFTER: Duration = Duration::from_millis(1500);
const RECENT_COMMITS: usize = 32;

#[derive(Default)]
pub struct Reader {
    pageservers: Vec<NodeId>,
    next_request_id: u64,
    /// Requests sent: when, and for which page and LSN.
    in_flight: BTreeMap<u64, (Duration, PageId, Lsn)>,
    /// End LSNs of recently acknowledged commits: older LSNs to read at.
    recent_commits: VecDeque<Lsn>,
    /// A page read with a given probability (the hot-page experiment's reads).
    hot_read: Option<(PageId, f64)>,
    /// The read-lsn-too-old bug.
    lsn_too_old: bool,
}

impl Reader {
    pub fn new(
        pageservers: Vec<NodeId>,
        hot_read: Option<(PageId, f64)>,
        lsn_too_old: bool,
    ) -> Reader {
        Reader {
            pageservers,
            hot_read,
            lsn_too_old,
            // Ids unique across incarnations: an answer to a request of the process before a
            // restart must not match a request of this one.
            next_request_id: u64::from(madsim::rand::random::<u32>()) << 32,
            ..Reader::default()
        }
    }

    pub fn commit_acked(&mut self, end_lsn: Lsn) {
        if self.recent_commits.len() == RECENT_COMMITS {
            self.recent_commits.pop_front();
        }
        self.recent_commits.push_back(end_lsn);
    }

    /// Sends one read of a page among `pages`, at `commit_lsn` or an older acknowledged LSN;
    /// reports the reads that got no answer in time as failed.
    #[allow(clippy::too_many_arguments)]
    pub fn tick(
        &mut self,
        me: NodeId,
        observer: &Arc<dyn Observer>,
        net: &Net,
        elapsed: Duration,
        pages: usize,
        nth_page: impl Fn(usize) -> PageId,
        commit_lsn: Lsn,
    ) {
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, (sent, _, _))| elapsed.saturating_sub(*sent) >= GIVE_UP_AFTER)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let Some((sent, page, lsn)) = self.in_flight.remove(&id) else {
                unreachable!("an expired read is in flight")
            };
            let waited_ns = elapsed.saturating_sub(sent).as_nanos() as u64;
            let obs = Observation::PageReadFailed {
                page,
                lsn,
                waited_ns,
            };
            observer.observe(me, obs);
        }
        if self.pageservers.is_empty()
            || pages == 0
            || commit_lsn == Lsn::ZERO
            || self.in_flight.len() >= MAX_IN_FLIGHT
        {
            return;
        }
        let mut rng = madsim::rand::thread_rng();
        let page = match self.hot_read {
            Some((hot, share)) if rng.gen_bool(share) => hot,
            _ => nth_page(rng.gen_range(0..pages)),
        };
        let (lsn, latest) = match self.recent_commits.len() {
            n if n > 0 && rng.gen_bool(0.3) => (
                self.recent_commits[rng.gen_range(0..n)].min(commit_lsn),
                false,
            ),
            _ => (self.latest_lsn(commit_lsn), true),
        };
        self.next_request_id += 1;
        let to = self.pageservers[self.next_request_id as usize % self.pageservers.len()];
        self.in_flight
            .insert(self.next_request_id, (elapsed, page, lsn));
        observer.observe(me, Observation::GetPageSent { page, lsn, latest });
        net.send(
            to,
            Message::GetPage {
                request_id: self.next_request_id,
                page,
                lsn,
            },
        );
    }

    /// The LSN to read the latest version of a page at: the commit LSN. The read-lsn-too-old
    /// bug reads at the commit before the last acknowledged one, as a stale last-written-LSN
    /// cache would.
    fn latest_lsn(&self, commit_lsn: Lsn) -> Lsn {
        match self.recent_commits.len() {
            n if self.lsn_too_old && n >= 2 => self.recent_commits[n - 2],
            _ => commit_lsn,
        }
    }

    /// Reports a GetPage answer, judged by the harness against what was asked.
    #[allow(clippy::too_many_arguments)]
    pub fn on_response(
        &mut self,
        me: NodeId,
        observer: &Arc<dyn Observer>,
        request_id: u64,
        page: PageId,
        lsn: Lsn,
        result: &Result<(Arc<Vec<u8>>, u32), String>,
        elapsed: Duration,
    ) {
        let Some((sent, asked_page, asked_lsn)) = self.in_flight.remove(&request_id) else {
            return;
        };
        let obs = match result {
            Ok((bytes, records_applied)) => {
                let checksum_ok = Page::from_bytes(bytes).is_some_and(|p| p.verify());
                let page_crc = crc32c::crc32c(bytes);
                Observation::PageRead {
                    page: asked_page,
                    lsn: asked_lsn,
                    answered_page: page,
                    answered_lsn: lsn,
                    page_crc,
                    checksum_ok,
                    records_applied: *records_applied,
                    latency_ns: elapsed.saturating_sub(sent).as_nanos() as u64,
                }
            }
            Err(_) => Observation::PageReadFailed {
                page: asked_page,
                lsn: asked_lsn,
                waited_ns: elapsed.saturating_sub(sent).as_nanos() as u64,
            },
        };
        observer.observe(me, obs);
    }
}
