//! `ADD <url>`: the HTTP source. Each build downloads the URL once (as
//! BuildKit re-checks it every build), streaming the body to a file in the
//! store's scratch area while hashing it; the file gets mode 0600 and the
//! response's `Last-Modified` as its mtime (else the Unix epoch), and what
//! reads it keys on `--checksum` when given, else on the content.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use kiln_cache::digest::Hasher;
use kiln_cache::Digest;
use tokio::sync::OnceCell;

use super::WorkerError;
use crate::key::CacheKey;

/// One downloaded file.
#[derive(Debug, Clone)]
pub(super) struct Downloaded {
    /// A directory holding only the file.
    pub dir: PathBuf,
    /// sha256 of the content.
    pub digest: Digest,
    /// `Last-Modified`, when the server sent one that parses.
    pub last_modified: Option<SystemTime>,
}

type Slot = Arc<OnceCell<Result<Downloaded, String>>>;

/// The downloads of one build, each URL fetched at most once.
#[derive(Default)]
pub(super) struct Downloads {
    client: std::sync::OnceLock<reqwest::Client>,
    slots: Mutex<HashMap<(String, String), Slot>>,
    dirs: Mutex<Vec<PathBuf>>,
}

impl Downloads {
    fn client(&self) -> Result<&reqwest::Client, WorkerError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let c = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WorkerError::Other(format!("making an HTTP client: {e}")))?;
        Ok(self.client.get_or_init(|| c))
    }

    /// The file at `url`, named `filename`, downloaded into a new directory
    /// under `scratch` on first use in this build.
    pub async fn get(
        &self,
        url: &str,
        filename: &str,
        scratch: impl FnOnce() -> Result<PathBuf, WorkerError>,
    ) -> Result<Downloaded, WorkerError> {
        let slot = Arc::clone(
            self.slots
                .lock()
                .expect("downloads lock")
                .entry((url.to_string(), filename.to_string()))
                .or_default(),
        );
        let result = slot
            .get_or_init(|| async {
                let dir = scratch().map_err(|e| e.to_string())?;
                self.dirs.lock().expect("downloads lock").push(dir.clone());
                self.fetch(url, &dir, filename)
                    .await
                    .map_err(|e| format!("ADD {url}: {e}"))
            })
            .await;
        result.clone().map_err(WorkerError::Other)
    }

    async fn fetch(&self, url: &str, dir: &Path, filename: &str) -> Result<Downloaded, String> {
        let mut response = self
            .client()
            .map_err(|e| e.to_string())?
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("invalid response status {status}"));
        }
        let last_modified = response
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let path = dir.join(filename);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        let mut hasher = Hasher::new();
        // Chunk by chunk: memory stays flat whatever the size. The writes
        // are small and local; this runs on a blocking-capable thread.
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{e}"))? {
            hasher.update(&chunk);
            file.write_all(&chunk)
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        let mtime = last_modified.unwrap_or(SystemTime::UNIX_EPOCH);
        file.set_times(
            std::fs::FileTimes::new()
                .set_accessed(mtime)
                .set_modified(mtime),
        )
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("finishing {}: {e}", path.display()))?;
        Ok(Downloaded {
            dir: dir.to_path_buf(),
            digest: hasher.finish(),
            last_modified,
        })
    }

    /// Removes every download of this build.
    pub fn remove_all(&self) {
        for d in self.dirs.lock().expect("downloads lock").drain(..) {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// What a reader of the download keys on, as BuildKit's `formatCacheKey`:
/// the file name and the checksum (given, or of the content) plus, for
/// content, the mtime the file lands with.
pub(super) fn content_key(
    filename: &str,
    checksum: &str,
    last_modified: Option<SystemTime>,
) -> CacheKey {
    let mut h = blake3::Hasher::new();
    h.update(b"kiln.http.v1\0");
    h.update(&(filename.len() as u64).to_le_bytes());
    h.update(filename.as_bytes());
    h.update(&(checksum.len() as u64).to_le_bytes());
    h.update(checksum.as_bytes());
    match last_modified.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()) {
        Some(d) => {
            h.update(b"m");
            h.update(&d.as_secs().to_le_bytes());
        }
        None => {
            h.update(b"-");
        }
    }
    CacheKey(*h.finalize().as_bytes())
}
