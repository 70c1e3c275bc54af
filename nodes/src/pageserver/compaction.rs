//! Image creation: which pages get a new image layer after a delta layer is flushed.
//!
//! Three policies, so that their costs can be compared on the same WAL:
//! - `per-page-records:N` (Databricks Lakebase's rule): a page whose chain of records since its
//!   last image (or since the record that initialised it) is longer than N gets an image at
//!   its last change, checked after every chunk of WAL ingest takes and before reads waiting
//!   for that WAL are answered. A read then applies at most N records plus the page's records
//!   in the last chunk.
//! - `layer-count:N` (Neon's public rule, its `image_creation_threshold`): once N delta layers
//!   have covered a key range (a partition of [`PARTITION_PAGES`] pages, Neon's 128 MiB
//!   `compaction_target_size`) since its last image layer, every page of the range that changed
//!   gets an image. A hot page's chain then grows with the layer size, not with N.
//! - `none`: no images; reads replay everything since a page's first record.
//!
//! Guarantees: an image holds the page as of its last change at or below the flush LSN (asserted
//! where it is made), and it is durable (file and directory synced) before the layer map uses it.

use super::Pageserver;
use crate::page::Page;

/// An image layer written, not yet durable: its file name and bytes, page, LSN and image.
type MadeImage = (String, Vec<u8>, PageId, Lsn, Page);
use crate::bugs::Bug;
use crate::durable::sync_all;
use crate::ids::{Lsn, PageId};
use crate::observe::Observation;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Pages in one key range of the `layer-count` rule: 128 MiB of 8 KiB pages.
pub const PARTITION_PAGES: u32 = 16_384;

/// When the pageserver writes a page image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ImagePolicy {
    PerPageRecords(usize),
    LayerCount(usize),
    None,
}

impl fmt::Display for ImagePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImagePolicy::PerPageRecords(n) => write!(f, "per-page-records:{n}"),
            ImagePolicy::LayerCount(n) => write!(f, "layer-count:{n}"),
            ImagePolicy::None => write!(f, "none"),
        }
    }
}

impl FromStr for ImagePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<ImagePolicy, String> {
        let bad = || {
            format!("image policy '{s}': use per-page-records:N, layer-count:N (N from 1 to 100000) or none")
        };
        if s == "none" {
            return Ok(ImagePolicy::None);
        }
        let (kind, n) = s.split_once(':').ok_or_else(bad)?;
        let n: usize = n.parse().map_err(|_| bad())?;
        if !(1..=100_000).contains(&n) {
            return Err(bad());
        }
        match kind {
            "per-page-records" => Ok(ImagePolicy::PerPageRecords(n)),
            "layer-count" => Ok(ImagePolicy::LayerCount(n)),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for ImagePolicy {
    type Error = String;
    fn try_from(s: String) -> Result<ImagePolicy, String> {
        s.parse()
    }
}

impl From<ImagePolicy> for String {
    fn from(p: ImagePolicy) -> String {
        p.to_string()
    }
}

/// Per key range: delta layers flushed since its last image layer (the `layer-count` rule).
#[derive(Default)]
pub struct LayerCounts(BTreeMap<u32, usize>);

impl Pageserver {
    /// `per-page-records`: the pages ingest changed whose chain up to `upto` (what was
    /// ingested) is longer than N, each to be imaged at its last change.
    pub(super) fn pages_over_threshold(&mut self, upto: Lsn) -> Vec<(PageId, Lsn)> {
        let ImagePolicy::PerPageRecords(n) = self.cfg.image_policy else {
            return Vec::new();
        };
        if self.cfg.bugs.has(Bug::ImagesNeverCreated) {
            return Vec::new();
        }
        let changed = self.map.take_changed();
        changed
            .into_iter()
            .filter(|p| self.map.chain_len(*p, upto) > n)
            .filter_map(|p| Some((p, self.map.last_change(p, upto)?)))
            .collect()
    }

    /// `layer-count`: the pages that get an image now that a new delta layer holds the WAL to
    /// `upto`.
    pub(super) fn pages_to_image(&mut self, upto: Lsn) -> Vec<(PageId, Lsn)> {
        match self.cfg.image_policy {
            ImagePolicy::None | ImagePolicy::PerPageRecords(_) => Vec::new(),
            ImagePolicy::LayerCount(_) if self.cfg.bugs.has(Bug::ImagesNeverCreated) => Vec::new(),
            ImagePolicy::LayerCount(n) => {
                // A delta layer holds an LSN range of every key (Neon's L0 layers): it covers
                // every key range that has pages.
                let mut due = Vec::new();
                let mut partitions: Vec<u32> =
                    self.map.pages().map(|p| p.0 / PARTITION_PAGES).collect();
                partitions.dedup();
                for part in partitions {
                    let count = self.layer_counts.0.entry(part).or_default();
                    *count += 1;
                    if *count >= n {
                        *count = 0;
                        due.push(part);
                    }
                }
                self.map
                    .pages()
                    .filter(|p| due.contains(&(p.0 / PARTITION_PAGES)))
                    .filter(|p| self.map.changed_since_image(*p, upto))
                    .filter_map(|p| Some((p, self.map.last_change(p, upto)?)))
                    .collect()
            }
        }
    }

    /// Image layers of each page at each of its LSNs (a change of the page), in LSN order per
    /// page, so that each image builds on the one before.
    /// Writes the images, makes them durable, and only then serves and uploads them. A full
    /// disk fails it with nothing made (the files it wrote are removed).
    pub(super) async fn create_images(
        &mut self,
        images: Vec<(PageId, Lsn)>,
    ) -> std::io::Result<()> {
        if images.is_empty() {
            return Ok(());
        }
        let pages: Vec<PageId> = images.iter().map(|(page, _)| *page).collect();
        let made = self.write_images(images);
        if made.is_err() {
            // A full disk: the next image pass tries these pages again.
            crate::probe!(ImagePassFullDisk);
            self.map.mark_changed(pages);
        }
        let made = made?;
        // The image files are synced at once, as a real pageserver issues them in parallel;
        // none is served before every one and the directory are durable.
        let files: Vec<_> = made.iter().map(|(name, ..)| Some(name.clone())).collect();
        sync_all(&self.cfg.disk, &files).await?;
        self.cfg.disk.sync_dir().await?;
        for (name, bytes, page, label, image) in made {
            if !self.getpage.is_empty() {
                crate::probe!(ImageWhileGetPageWaits);
            }
            self.map.add_image(page, label, image);
            let obs = Observation::ImageCreated { page, lsn: label };
            self.cfg.observer.observe(self.cfg.id, obs);
            self.remote.enqueue(&name, bytes, None);
        }
        Ok(())
    }

    /// Builds and writes the image files (not yet durable). On a full disk it fails, with the
    /// files it wrote removed.
    fn write_images(&mut self, images: Vec<(PageId, Lsn)>) -> std::io::Result<Vec<MadeImage>> {
        let mut made: Vec<MadeImage> = Vec::with_capacity(images.len());
        for (page, lsn) in images {
            assert_eq!(
                self.map.last_change(page, lsn),
                Some(lsn),
                "an image is made at a change of its page"
            );
            let (image, _) = self.map.reconstruct(page, lsn);
            assert_eq!(
                image.lsn(),
                lsn,
                "an image holds the page as of its last change"
            );
            // The image-wrong-lsn bug labels the image one record early.
            let label = match self.cfg.bugs.has(Bug::ImageWrongLsn) {
                true => self.map.change_before(page, lsn).unwrap_or(lsn),
                false => lsn,
            };
            let name = super::layers::image_name(page, label);
            let bytes = super::layers::encode_image(page, label, &image);
            let written = super::write_new_file(&self.cfg.disk, &name, &bytes);
            if let Err(e) = written {
                for (name, ..) in &made {
                    let _ = self.cfg.disk.remove(name);
                }
                return Err(e);
            }
            made.push((name, bytes, page, label, image));
        }
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print() {
        for s in ["per-page-records:8", "layer-count:3", "none"] {
            assert_eq!(s.parse::<ImagePolicy>().unwrap().to_string(), s);
        }
        for bad in [
            "per-page-records",
            "layer-count:0",
            "sometimes:3",
            "none:1",
            "",
        ] {
            assert!(bad.parse::<ImagePolicy>().is_err(), "{bad} accepted");
        }
    }
}
