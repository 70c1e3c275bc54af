//! What the client asked for, kept by the harness as it hands the work to the compute: the
//! checkers judge acknowledged transactions against the client's own requests, never against
//! what the compute says it wrote.

use lakesim_nodes::compute::workload::{DeltaSpec, WorkItem, WorkSource};
use std::sync::{Arc, Mutex};

/// The writes of every request the client made, by request number (`None` for work that is
/// not a transaction), and whether the client ran out of work.
#[derive(Clone, Default)]
pub struct ClientLog(Arc<Mutex<Requests>>);

#[derive(Default)]
pub struct Requests {
    pub writes: Vec<Option<Vec<DeltaSpec>>>,
    pub exhausted: bool,
}

impl ClientLog {
    /// Wraps `source` so that every item it hands out is logged, in order.
    pub fn record(&self, source: Box<dyn WorkSource>) -> Box<dyn WorkSource> {
        Box::new(Recording {
            source,
            log: self.clone(),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Requests> {
        self.0.lock().unwrap()
    }
}

struct Recording {
    source: Box<dyn WorkSource>,
    log: ClientLog,
}

impl WorkSource for Recording {
    fn next(&mut self) -> Option<WorkItem> {
        let item = self.source.next();
        let mut log = self.log.lock();
        match &item {
            Some(WorkItem::Txn { deltas }) => log.writes.push(Some(deltas.clone())),
            Some(_) => log.writes.push(None),
            None => log.exhausted = true,
        }
        item
    }
}

/// The bytes a write asks for, at the offset it lands on: the format `DeltaSpec` documents
/// (values from the seed; an offset clamped so the write fits the page's contents).
pub fn expected_write(d: &DeltaSpec) -> (u32, u16, u16, u32) {
    const CONTENTS: u16 = 8192 - 12;
    let bytes: Vec<u8> = (0..d.len)
        .map(|i| d.seed.wrapping_add((i as u8).wrapping_mul(31)))
        .collect();
    let offset = d.offset.min(CONTENTS - d.len);
    (d.page, offset, d.len, crc32c::crc32c(&bytes))
}
