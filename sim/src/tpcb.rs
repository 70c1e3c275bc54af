//! pgbench's TPC-B-like workload (`[workload] kind = "tpcb"`), laid out and sized as
//! PostgreSQL 15 lays it out and logs it.
//!
//! **Tables.** Per scale unit: 100,000 accounts, 10 tellers, 1 branch; history grows by one
//! row per transaction. Pages are filled as `pgbench -i` fills them at fillfactor 100 (from
//! `pageinspect` on a fresh pgbench database, `traces/pgbench-fpw-off.pages.tsv`): 61
//! account tuples of 128 bytes per page (`pd_lower` 268, `pd_upper` 384, 1,640 pages per
//! scale unit), 362 keys per leaf of `pgbench_accounts_pkey` (276 pages per scale unit),
//! 157 history rows per page. A page's contents keep Postgres's layout (item pointers from
//! the front, tuples from the back), so its free-space hole is where Postgres's is, and a
//! full-page image leaves out the same bytes.
//!
//! **Load.** The run starts by writing every account and index page whole, and the tellers
//! and branches, then a checkpoint: the database `pgbench -i` leaves. Measurements start at
//! that checkpoint.
//!
//! **Transaction.** Update an account (chosen uniformly, as pgbench does, or with pgbench's
//! `random_exponential` skew), a teller and a branch, insert a history row, commit. Record
//! sizes are the means of a real pgbench run's WAL (`traces/pgbench-fpw-off.stats.txt`, scale
//! 1, 4 clients, 9,497 transactions), with the same mix per transaction:
//!
//! | record (Postgres)                      | bytes | per transaction |
//! |----------------------------------------|-------|-----------------|
//! | Heap HOT_UPDATE (account, teller, branch) | 72 | 2.83            |
//! | Heap UPDATE, not HOT (account)          | 171   | 0.17            |
//! | Btree INSERT_LEAF (accounts_pkey)       | 64    | 0.17            |
//! | Heap LOCK (account)                     | 54    | 0.35            |
//! | Heap2 PRUNE (account page)              | 63    | 0.84            |
//! | Heap INSERT (history)                   | 79    | 1.00            |
//! | Transaction COMMIT                      | 34    | 1.00            |
//!
//! lakesim's own commit record is 25 bytes, so its WAL per transaction is about 2% below
//! Postgres's (430 bytes of records per transaction in that run, 446 with page headers).

use crate::config::WorkloadConfig;
use lakesim_nodes::compute::workload::{DeltaSpec, WorkItem, WorkSource};
use lakesim_nodes::page::CONTENT_SIZE;
use lakesim_nodes::wal::HEADER_LEN;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const ACCOUNTS_PER_SCALE: u32 = 100_000;
pub const ACCOUNTS_PER_PAGE: u32 = 61;
const KEYS_PER_INDEX_PAGE: u32 = 362;
const HISTORY_ROWS_PER_PAGE: u32 = 157;
/// Postgres's page header is 24 bytes, lakesim's 12: Postgres offset `o` is contents offset
/// `o - 12`, so both keep tuples at the same place in the 8 KiB page.
const PG_HEADER_SHIFT: u16 = 12;
const TUPLE_LEN: u16 = 128;
const PG_PAGE: usize = 8192;
/// Mean `pd_lower` and `pd_upper` of a `pgbench_accounts_pkey` leaf at scale 1.
const INDEX_LEAF_LOWER_UPPER: (u16, u16) = (1481, 2347);
const HISTORY_TUPLE_LEN: u16 = 48;

/// Bytes of a delta record's header and fixed payload: a record of `n` bytes carries
/// `n - DELTA_OVERHEAD` bytes of data.
const DELTA_OVERHEAD: u16 = (HEADER_LEN + 8) as u16;
const HOT_UPDATE: u16 = 72;
const UPDATE: u16 = 171;
const INSERT_LEAF: u16 = 64;
const LOCK: u16 = 54;
const PRUNE: u16 = 63;
const INSERT: u16 = 79;
const P_NOT_HOT: f64 = 0.172;
const P_LOCK: f64 = 0.351;
const P_PRUNE: f64 = 0.838;

/// Where each table lives in lakesim's page space.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub accounts: u32,
    pub index: u32,
    pub tellers: u32,
    pub branches: u32,
    /// First history page; history grows from here.
    pub history: u32,
}

impl Layout {
    pub fn new(scale: u32) -> Layout {
        let accounts = (ACCOUNTS_PER_SCALE * scale).div_ceil(ACCOUNTS_PER_PAGE);
        let index = (ACCOUNTS_PER_SCALE * scale).div_ceil(KEYS_PER_INDEX_PAGE);
        let tellers = (10 * scale).div_ceil(ACCOUNTS_PER_PAGE);
        let branches = scale.div_ceil(ACCOUNTS_PER_PAGE);
        Layout {
            accounts,
            index,
            tellers,
            branches,
            history: accounts + index + tellers + branches,
        }
    }

    pub fn first_teller_page(&self) -> u32 {
        self.accounts + self.index
    }

    /// The page of branch 1: at scale 1 every transaction updates it (the hot page).
    pub fn first_branch_page(&self) -> u32 {
        self.accounts + self.index + self.tellers
    }
}

/// What a tpcb client is: its seed and parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct TpcbSpec {
    pub seed: u64,
    pub scale: u32,
    pub account_skew: f64,
}

impl TpcbSpec {
    pub fn new(seed: u64, w: &WorkloadConfig) -> TpcbSpec {
        TpcbSpec {
            seed,
            scale: w.scale,
            account_skew: w.account_skew,
        }
    }
}

/// The generator: the load, a checkpoint, then transactions without end.
pub struct Tpcb {
    spec: TpcbSpec,
    layout: Layout,
    rng: ChaCha8Rng,
    /// Pages of the load still to write, in order.
    load: std::ops::Range<u32>,
    loaded: bool,
    history_rows: u64,
}

impl Tpcb {
    pub fn new(spec: TpcbSpec) -> Tpcb {
        let layout = Layout::new(spec.scale);
        Tpcb {
            rng: ChaCha8Rng::seed_from_u64(spec.seed),
            load: 0..layout.history,
            layout,
            spec,
            loaded: false,
            history_rows: 0,
        }
    }

    /// Rows (of `TUPLE_LEN`) a loaded page of this table holds.
    fn rows_on(&self, page: u32) -> u32 {
        let l = &self.layout;
        let scale = self.spec.scale;
        if page < l.accounts {
            let left = ACCOUNTS_PER_SCALE * scale - page * ACCOUNTS_PER_PAGE;
            left.min(ACCOUNTS_PER_PAGE)
        } else if page < l.first_teller_page() {
            0
        } else if page < l.first_branch_page() {
            (10 * scale - (page - l.first_teller_page()) * ACCOUNTS_PER_PAGE).min(ACCOUNTS_PER_PAGE)
        } else {
            (scale - (page - l.first_branch_page()) * ACCOUNTS_PER_PAGE).min(ACCOUNTS_PER_PAGE)
        }
    }

    /// A loaded page: its header and item pointers, and its tuples at the back.
    fn load_page(&mut self, page: u32) -> WorkItem {
        let rows = self.rows_on(page) as u16;
        let (mut lower, mut upper) = (24 + 4 * rows, PG_PAGE as u16 - rows * TUPLE_LEN);
        if (self.layout.accounts..self.layout.first_teller_page()).contains(&page) {
            // A leaf of pgbench_accounts_pkey as `pageinspect` shows one after `pgbench -i`.
            (lower, upper) = INDEX_LEAF_LOWER_UPPER;
        }
        let (lower, upper) = (lower - PG_HEADER_SHIFT, upper - PG_HEADER_SHIFT);
        WorkItem::Txn {
            deltas: vec![
                self.delta(page, 0, lower),
                self.delta(page, upper, CONTENT_SIZE as u16 - upper),
            ],
        }
    }

    fn delta(&mut self, page: u32, offset: u16, len: u16) -> DeltaSpec {
        DeltaSpec {
            page,
            offset,
            len: len.max(1),
            seed: self.rng.gen_range(1..=255),
        }
    }

    /// A record of `record_bytes` changing the tuple at `slot` of `page`.
    fn update(&mut self, page: u32, slot: u32, record_bytes: u16) -> DeltaSpec {
        let at = CONTENT_SIZE as u16 - (slot as u16 + 1) * TUPLE_LEN;
        self.delta(page, at, record_bytes - DELTA_OVERHEAD)
    }

    /// pgbench's account choice: uniform, or `random_exponential(1, n, skew)`.
    fn account(&mut self) -> u32 {
        let n = ACCOUNTS_PER_SCALE * self.spec.scale;
        if self.spec.account_skew <= 0.0 {
            return self.rng.gen_range(0..n);
        }
        let p = self.spec.account_skew;
        let cut = (-p).exp();
        let u: f64 = 1.0 - self.rng.gen::<f64>();
        let x = -(cut + (1.0 - cut) * u).ln() / p;
        ((x * n as f64) as u32).min(n - 1)
    }

    fn transaction(&mut self) -> WorkItem {
        let l = self.layout.clone();
        let aid = self.account();
        let (page, slot) = (aid / ACCOUNTS_PER_PAGE, aid % ACCOUNTS_PER_PAGE);
        let mut deltas = Vec::with_capacity(8);
        if self.rng.gen_bool(P_PRUNE) {
            deltas.push(self.update(page, slot, PRUNE));
        }
        if self.rng.gen_bool(P_LOCK) {
            deltas.push(self.update(page, slot, LOCK));
        }
        if self.rng.gen_bool(P_NOT_HOT) {
            // The new version goes to the table's last page, and the index gets a new entry.
            deltas.push(self.update(l.accounts - 1, slot, UPDATE));
            let leaf = l.accounts + aid / KEYS_PER_INDEX_PAGE;
            deltas.push(self.update(leaf, slot, INSERT_LEAF));
        } else {
            deltas.push(self.update(page, slot, HOT_UPDATE));
        }
        let tid = self.rng.gen_range(0..10 * self.spec.scale);
        let teller = l.first_teller_page() + tid / ACCOUNTS_PER_PAGE;
        deltas.push(self.update(teller, tid % ACCOUNTS_PER_PAGE, HOT_UPDATE));
        let bid = self.rng.gen_range(0..self.spec.scale);
        let branch = l.first_branch_page() + bid / ACCOUNTS_PER_PAGE;
        deltas.push(self.update(branch, bid % ACCOUNTS_PER_PAGE, HOT_UPDATE));
        deltas.push(self.history_insert());
        WorkItem::Txn { deltas }
    }

    /// A history row, appended from the back of the current history page.
    fn history_insert(&mut self) -> DeltaSpec {
        let row = self.history_rows;
        self.history_rows += 1;
        let page = self.layout.history + (row / u64::from(HISTORY_ROWS_PER_PAGE)) as u32;
        let slot = (row % u64::from(HISTORY_ROWS_PER_PAGE)) as u16;
        let at = CONTENT_SIZE as u16 - (slot + 1) * HISTORY_TUPLE_LEN;
        self.delta(page, at, INSERT - DELTA_OVERHEAD)
    }
}

impl WorkSource for Tpcb {
    fn next(&mut self) -> Option<WorkItem> {
        if let Some(page) = self.load.next() {
            return Some(self.load_page(page));
        }
        if !self.loaded {
            self.loaded = true;
            return Some(WorkItem::Checkpoint);
        }
        Some(self.transaction())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_pgbench_at_scale_1() {
        let l = Layout::new(1);
        assert_eq!(
            l.accounts, 1640,
            "pgbench_accounts has 1,640 pages at scale 1"
        );
        assert_eq!(l.index, 277);
        assert_eq!((l.tellers, l.branches), (1, 1));
    }

    #[test]
    fn a_loaded_account_page_has_postgres_hole() {
        let mut t = Tpcb::new(TpcbSpec {
            seed: 1,
            scale: 1,
            account_skew: 0.0,
        });
        let WorkItem::Txn { deltas } = t.next().unwrap() else {
            panic!("the load writes pages");
        };
        // Postgres: pd_lower 268, pd_upper 384, so a 116-byte hole.
        let hole = deltas[1].offset - (deltas[0].offset + deltas[0].len);
        assert_eq!(hole, 116);
    }

    #[test]
    fn skewed_choice_prefers_low_accounts_and_stays_in_range() {
        let mut t = Tpcb::new(TpcbSpec {
            seed: 3,
            scale: 1,
            account_skew: 5.0,
        });
        let picks: Vec<u32> = (0..2000).map(|_| t.account()).collect();
        assert!(picks.iter().all(|a| *a < ACCOUNTS_PER_SCALE));
        let low = picks
            .iter()
            .filter(|a| **a < ACCOUNTS_PER_SCALE / 5)
            .count();
        assert!(
            low > 1000,
            "exponential skew favours the first fifth: {low}"
        );
    }
}
