//! The one way durable metadata is written: to a temporary file, fsync, rename over the old
//! name, fsync the directory. A crash at any point leaves either the old or the new contents
//! under the name, never a mix, because the rename is atomic and only happens after the new
//! contents are durable. And the one way several files are made durable at once
//! ([`sync_all`]).

use lakesim_faults::Disk;
use std::io::Result;

/// Replaces `name` with `bytes` crash-safely. With `unsynced` (a planted bug), both fsyncs are
/// skipped, so a crash may revert the rename or leave a file whose data never reached the disk.
pub async fn write_atomic(disk: &Disk, name: &str, bytes: &[u8], unsynced: bool) -> Result<()> {
    let tmp = format!("{name}.partial");
    disk.create(&tmp)?;
    disk.set_len(&tmp, 0)?;
    disk.write(&tmp, 0, bytes)?;
    if !unsynced {
        disk.sync(&tmp).await?;
    }
    disk.rename(&tmp, name)?;
    if !unsynced {
        disk.sync_dir().await?;
    }
    Ok(())
}

/// Frames durable metadata (a serde value as JSON) with a magic number, its length and a
/// CRC32C, so that a torn or rotted file is told from a valid one: `magic | len | crc | json`.
pub fn encode_checked<T: serde::Serialize>(magic: u32, value: &T) -> Vec<u8> {
    let body = serde_json::to_vec(value).expect("metadata serialises");
    let mut out = Vec::with_capacity(12 + body.len());
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads what [`encode_checked`] wrote; an error says what does not hold.
pub fn decode_checked<T: serde::de::DeserializeOwned>(
    magic: u32,
    bytes: &[u8],
) -> std::result::Result<T, String> {
    let word = |i: usize| {
        bytes
            .get(i * 4..i * 4 + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    if word(0) != Some(magic) {
        return Err("bad magic".into());
    }
    let len = word(1).ok_or("truncated header")? as usize;
    let body = bytes.get(12..12 + len).ok_or("truncated body")?;
    if word(2) != Some(crc32c::crc32c(body)) {
        return Err("checksum mismatch".into());
    }
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// Syncs every named file (`None`: the directory) at once, as a storage node issues them, and
/// returns once every one is durable; the first error, in the order named, is the result. The
/// fsyncs run concurrently within the caller's task (each sleeps its own latency), so a flush
/// costs no task of its own: every campaign seed pays for it on every group commit.
pub async fn sync_all(disk: &Disk, names: &[Option<String>]) -> Result<()> {
    let syncs = names.iter().map(|name| async move {
        match name {
            Some(name) => disk.sync(name).await,
            None => disk.sync_dir().await,
        }
    });
    futures_util::future::join_all(syncs)
        .await
        .into_iter()
        .collect()
}
