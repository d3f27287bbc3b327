//! The on-disk cache of compiled plug-ins.
//!
//! Compiling a component takes tens to hundreds of milliseconds; loading a compiled one
//! takes well under one. Entries are keyed by the component's sha256 *and* the engine's
//! compatibility hash, so a different wasmtime version or engine configuration never
//! reads an entry it cannot use. Entries are written to a temporary file and renamed, so
//! a crash never leaves a half-written entry under a real name. The directory must be
//! writable only by the service: loading an entry maps it as executable code.
//!
//! The cache has a size quota: after each write, the least recently used entries are
//! removed until it fits (an entry is used when loaded), so uploads cannot fill the disk
//! with compiled code. Only components that linked are cached.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::RuntimeError;

pub(crate) struct Cache {
    dir: PathBuf,
    engine_key: String,
    max_bytes: u64,
}

impl Cache {
    pub fn open(dir: &Path, engine: &Engine, max_bytes: u64) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(dir).map_err(|source| RuntimeError::Cache {
            path: dir.to_owned(),
            source,
        })?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", h.finish()),
            max_bytes,
        })
    }

    fn path(&self, version: &str) -> PathBuf {
        self.dir
            .join(format!("{version}-{}.cwasm", self.engine_key))
    }

    pub fn get(&self, engine: &Engine, version: &str) -> Option<Component> {
        let path = self.path(version);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `put` below from a component this engine compiled,
        // under a name that includes the engine's compatibility hash; the cache directory
        // belongs to the service alone.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => {
                // Marks it recently used for the quota.
                if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(std::time::SystemTime::now());
                }
                Some(c)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "ignoring unusable compiled-cache entry");
                None
            }
        }
    }

    pub fn put(&self, version: &str, component: &Component) -> std::io::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        let path = self.path(version);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
        self.prune(&path)
    }

    /// Removes the least recently used entries (never `keep`) until the cache fits its quota.
    fn prune(&self, keep: &Path) -> std::io::Result<()> {
        let mut entries = Vec::new();
        let mut total = 0u64;
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            let meta = e.metadata()?;
            if !meta.is_file() || e.path().extension().is_none_or(|x| x != "cwasm") {
                continue;
            }
            total += meta.len();
            entries.push((meta.modified()?, meta.len(), e.path()));
        }
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path != keep {
                std::fs::remove_file(&path)?;
                total -= len;
            }
        }
        Ok(())
    }
}
