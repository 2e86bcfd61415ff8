//! `StateCheckpointManager` and `AutoCheckpointer` over the Rust checkpoint manager.
//!
//! Each call turns the Python state into JSON bytes under the GIL, then releases the GIL for
//! everything else (SHA-256, compression, write, fsync, rename; on load: read, verify,
//! decompress, parse), and takes it back only to build the Python result.

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use bulwark::checkpoint::{
    self as ck, CheckpointId, Codec, Compression, FsStore, ListFilter, RetentionPolicy, SaveOptions,
};
use bulwark::telemetry::observers::CheckpointMetricsObserver;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{errors, json, runtime};

fn parse_id(id: &str) -> PyResult<CheckpointId> {
    CheckpointId::from_str(id).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The JSON bytes `json::to_json` wrote, as a value the manager serializes unchanged.
fn raw(bytes: Vec<u8>) -> Result<Box<RawValue>, ck::CheckpointError> {
    let text = String::from_utf8(bytes).map_err(|e| ck::CheckpointError::InvalidInput {
        what: "state",
        reason: e.to_string(),
    })?;
    RawValue::from_string(text).map_err(ck::CheckpointError::Serialize)
}

fn to_py<T: Serialize>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    let value = serde_json::to_value(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
    json::to_python(py, &value)
}

fn compression(value: &Bound<'_, PyAny>) -> PyResult<Compression> {
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(Compression::new(if b.is_true() {
            Codec::Zstd
        } else {
            Codec::None
        }));
    }
    if let Ok(s) = value.cast::<PyString>() {
        let codec = match &*s.to_cow()? {
            "zstd" => Codec::Zstd,
            "gzip" => Codec::Gzip,
            "none" => Codec::None,
            other => {
                return Err(PyValueError::new_err(format!(
                    "compression must be True, False, \"zstd\", \"gzip\" or \"none\", got {other:?}"
                )));
            }
        };
        return Ok(Compression::new(codec));
    }
    Err(PyTypeError::new_err(
        "compression must be a bool or one of \"zstd\", \"gzip\", \"none\"",
    ))
}

/// Durable, verified snapshots of JSON states in a folder (one file per checkpoint, fsynced
/// before the save returns; SHA-256 and checksums checked on load).
#[pyclass(module = "bulwark", frozen, subclass)]
#[derive(Debug)]
pub(crate) struct StateCheckpointManager {
    manager: ck::StateCheckpointManager,
    dir: PathBuf,
}

impl StateCheckpointManager {
    /// Runs `op` on the manager on the crate's runtime, with the GIL released.
    fn blocking<T, F, Fut>(&self, py: Python<'_>, op: F) -> PyResult<T>
    where
        T: Send,
        F: FnOnce(ck::StateCheckpointManager) -> Fut + Send,
        Fut: Future<Output = Result<T, ck::CheckpointError>>,
    {
        let runtime = runtime::get()?;
        let manager = self.manager.clone();
        py.detach(move || runtime.block_on(op(manager)))
            .map_err(errors::checkpoint)
    }
}

#[pymethods]
impl StateCheckpointManager {
    /// A manager over `checkpoint_dir` (created when missing). `compression=True` is zstd
    /// (Bulwark's default: gzip's ratio at a fraction of its time); `"gzip"` stores as the
    /// original did; `False` or `"none"` stores uncompressed.
    #[new]
    #[pyo3(signature = (checkpoint_dir = PathBuf::from("./checkpoints"), compression = None))]
    fn new(
        py: Python<'_>,
        checkpoint_dir: PathBuf,
        compression: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let compression = match compression {
            Some(c) => self::compression(c)?,
            None => Compression::new(Codec::Zstd),
        };
        let dir = checkpoint_dir.clone();
        let manager = py.detach(move || -> Result<_, ck::CheckpointError> {
            let store = FsStore::open(checkpoint_dir)?;
            ck::StateCheckpointManager::builder(Arc::new(store))
                .compression(compression)
                .observer(CheckpointMetricsObserver::global())
                .build()
        });
        Ok(Self {
            manager: manager.map_err(errors::checkpoint)?,
            dir,
        })
    }

    /// Saves `state` (any JSON value) as the newest checkpoint of `agent_id`'s
    /// `workflow_id` and returns its id once durable. `metadata` (str to str) is kept as labels.
    #[pyo3(signature = (state, agent_id, workflow_id, metadata = None))]
    fn save_checkpoint(
        &self,
        py: Python<'_>,
        state: &Bound<'_, PyAny>,
        agent_id: String,
        workflow_id: String,
        metadata: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        let mut options = SaveOptions::default();
        if let Some(labels) = metadata {
            for (k, v) in labels.iter() {
                options = options.label(
                    k.str()?.to_cow()?.into_owned(),
                    v.str()?.to_cow()?.into_owned(),
                );
            }
        }
        let bytes = json::to_json(state)?;
        let saved = self.blocking(py, move |m| async move {
            let state = raw(bytes)?;
            m.save_with(&*state, &agent_id, &workflow_id, options).await
        })?;
        Ok(saved.id.to_string())
    }

    /// The state saved as `checkpoint_id`, verified. `CheckpointNotFoundError` when there is
    /// none, `CheckpointCorruptedError` when its bytes do not verify.
    fn load_checkpoint(&self, py: Python<'_>, checkpoint_id: &str) -> PyResult<Py<PyAny>> {
        let id = parse_id(checkpoint_id)?;
        // Read, verified and decompressed without the GIL; only building the objects needs it.
        let text: Box<RawValue> =
            self.blocking(py, move |m| async move { m.load_checkpoint(&id).await })?;
        json::from_str(py, text.get())
    }

    /// The id of the newest checkpoint of `agent_id`'s `workflow_id` that verifies (a
    /// corrupt newer one is skipped), or None.
    fn get_latest_checkpoint(
        &self,
        py: Python<'_>,
        agent_id: String,
        workflow_id: String,
    ) -> PyResult<Option<String>> {
        let id = self.blocking(py, move |m| async move {
            m.get_latest_checkpoint(&agent_id, &workflow_id).await
        })?;
        Ok(id.map(|id| id.to_string()))
    }

    /// Metadata of the checkpoints (newest first), optionally of one agent and/or workflow.
    #[pyo3(signature = (agent_id = None, workflow_id = None, limit = None))]
    fn list_checkpoints(
        &self,
        py: Python<'_>,
        agent_id: Option<String>,
        workflow_id: Option<String>,
        limit: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let mut filter = ListFilter::all();
        filter.agent_id = agent_id;
        filter.workflow_id = workflow_id;
        let items = self.blocking(py, move |m| async move {
            let mut items = Vec::new();
            loop {
                let page = m.list(&filter).await?;
                items.extend(page.items);
                match (page.next_cursor, limit) {
                    (_, Some(limit)) if items.len() >= limit => {
                        items.truncate(limit);
                        break;
                    }
                    (Some(cursor), _) => filter.cursor = Some(cursor),
                    (None, _) => break,
                }
            }
            Ok(items)
        })?;
        to_py(py, &items)
    }

    /// A checkpoint's metadata, from the index.
    fn get_checkpoint_metadata(&self, py: Python<'_>, checkpoint_id: &str) -> PyResult<Py<PyAny>> {
        let id = parse_id(checkpoint_id)?;
        let meta = self.blocking(py, move |m| async move { m.metadata(&id).await })?;
        to_py(py, &meta)
    }

    /// Reads and verifies a checkpoint (SHA-256 included) and returns its metadata.
    fn verify_checkpoint(&self, py: Python<'_>, checkpoint_id: &str) -> PyResult<Py<PyAny>> {
        let id = parse_id(checkpoint_id)?;
        let meta = self.blocking(py, move |m| async move { m.verify(&id).await })?;
        to_py(py, &meta)
    }

    /// Deletes a checkpoint; true when it existed.
    fn delete_checkpoint(&self, py: Python<'_>, checkpoint_id: &str) -> PyResult<bool> {
        let id = parse_id(checkpoint_id)?;
        self.blocking(py, move |m| async move { m.delete(&id).await })
    }

    /// Keeps the newest `keep_last` per agent and workflow and removes older ones (and, with
    /// `max_age` seconds, any older than that); a workflow's newest valid checkpoint always
    /// stays. Returns the report (`removed`, `protected`, `freed_bytes`, ... as a dict).
    #[pyo3(signature = (keep_last = 10, max_age = None, dry_run = false))]
    fn cleanup_old_checkpoints(
        &self,
        py: Python<'_>,
        keep_last: usize,
        max_age: Option<f64>,
        dry_run: bool,
    ) -> PyResult<Py<PyAny>> {
        let mut policy = RetentionPolicy::keep_last(keep_last);
        if let Some(age) = max_age {
            policy = policy.max_age(crate::ratelimit::seconds("max_age", age)?);
        }
        if dry_run {
            policy = policy.dry_run();
        }
        let report = self.blocking(py, move |m| async move { m.cleanup(&policy).await })?;
        to_py(py, &report)
    }

    /// The folder the checkpoints live in.
    #[getter]
    fn checkpoint_dir(&self) -> PathBuf {
        self.dir.clone()
    }

    fn __repr__(&self) -> String {
        format!("StateCheckpointManager(checkpoint_dir={:?})", self.dir)
    }
}

/// Checkpoints a workflow every `checkpoint_interval` operations; each save records its
/// parent (the previous save).
#[pyclass(module = "bulwark", frozen)]
#[derive(Debug)]
pub(crate) struct AutoCheckpointer {
    inner: Arc<Mutex<ck::AutoCheckpointer>>,
}

#[pymethods]
impl AutoCheckpointer {
    #[new]
    #[pyo3(signature = (manager, agent_id, workflow_id, checkpoint_interval = 100))]
    fn new(
        manager: PyRef<'_, StateCheckpointManager>,
        agent_id: String,
        workflow_id: String,
        checkpoint_interval: u64,
    ) -> PyResult<Self> {
        let inner = ck::AutoCheckpointer::new(
            manager.manager.clone(),
            agent_id,
            workflow_id,
            checkpoint_interval,
        )
        .map_err(errors::checkpoint)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// Counts one operation; saves `state` when `checkpoint_interval` operations have passed
    /// since the last save and returns the new id, else None.
    fn maybe_checkpoint(
        &self,
        py: Python<'_>,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<Option<String>> {
        self.save(py, state, false)
    }

    /// Saves `state` now and restarts the count; returns the id.
    fn force_checkpoint(&self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<String> {
        self.save(py, state, true)?
            .ok_or_else(|| errors::CheckpointError::new_err("a forced checkpoint saved nothing"))
    }

    /// The id of the last save, if any.
    #[getter]
    fn last_checkpoint(&self) -> Option<String> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_checkpoint()
            .map(|id| id.to_string())
    }

    /// Operations counted since the last save.
    #[getter]
    fn operations_since_checkpoint(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .operations_since_checkpoint()
    }
}

impl AutoCheckpointer {
    fn save(
        &self,
        py: Python<'_>,
        state: &Bound<'_, PyAny>,
        force: bool,
    ) -> PyResult<Option<String>> {
        let bytes = json::to_json(state)?;
        let runtime = runtime::get()?;
        let inner = Arc::clone(&self.inner);
        let id = py
            .detach(move || {
                let state = raw(bytes)?;
                let mut auto = inner.lock().unwrap_or_else(PoisonError::into_inner);
                runtime.block_on(async {
                    if force {
                        auto.force_checkpoint(&*state).await.map(Some)
                    } else {
                        auto.maybe_checkpoint(&*state).await
                    }
                })
            })
            .map_err(errors::checkpoint)?;
        Ok(id.map(|id| id.to_string()))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StateCheckpointManager>()?;
    m.add_class::<AutoCheckpointer>()?;
    Ok(())
}
