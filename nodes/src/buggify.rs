//! BUGGIFY (FoundationDB's name): decision points in node code that, on seeds that turn them on,
//! take the rare branch more often: a smaller batch, an earlier persist. Each node's config
//! says whether they are on, so nothing process-wide is touched, and madsim's own network chaos
//! (which `madsim::buggify::enable` would switch on too) stays out of it.

/// True, on a buggified node, with probability `p` (drawn from madsim's seeded RNG).
pub fn buggify(enabled: bool, p: f64) -> bool {
    enabled && madsim::rand::random::<f64>() < p
}
