//! The one way durable metadata is written: to a temporary file, fsync, rename over the old
//! name, fsync the directory. A crash at any point leaves either the old or the new contents
//! under the name, never a mix, because the rename is atomic and only happens after the new
//! contents are durable.

use lakesim_faults::Disk;
use std::io::Result;

/// Replaces `name` with `bytes` crash-safely. With `unsynced` (a planted bug), both fsyncs are
/// skipped, so a crash may revert the rename or leave a file whose data never reached the disk.
pub async fn write_atomic(disk: &Disk, name: &str, bytes: &[u8], unsynced: bool) -> Result<()> {
    let tmp = format!("{name}.partial");
    disk.create(&tmp);
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
