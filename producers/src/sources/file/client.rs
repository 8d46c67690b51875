//! The `file` source's "provider": the file system. The file is read whole at each sweep.

use std::path::Path;

use crate::source::SourceError;

/// Reads the declared-assets file; an unreadable file is a configuration error naming it.
pub(super) async fn read(path: &Path) -> Result<String, SourceError> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|e| SourceError::Config(format!("{}: cannot read: {e}", path.display())))
}
