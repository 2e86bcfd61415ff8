//! What every handler can reach.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Shared state behind the API; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    data_dir: PathBuf,
    started: Instant,
}

impl AppState {
    /// State rooted at `data_dir`, where embedded backends keep their files.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner {
                data_dir,
                started: Instant::now(),
            }),
        }
    }

    /// The folder embedded backends write to.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }

    /// Seconds since this state was created.
    pub fn uptime_seconds(&self) -> f64 {
        self.inner.started.elapsed().as_secs_f64()
    }
}
