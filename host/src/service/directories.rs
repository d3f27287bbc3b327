//! Parsed directory versions, cached: the store keeps each version as it was given, the
//! service parses it once. Versions never change once stored, so only the current pointer
//! can go stale; it is set by this process's own writes and read from the store otherwise.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::directory::Directory;
use crate::store::{CaseStore, DirectoryRecord, StoreError};

/// The directory versions this process has read.
#[derive(Default)]
pub struct Directories {
    versions: RwLock<HashMap<u64, Arc<Directory>>>,
    current: RwLock<Option<Arc<Directory>>>,
}

impl Directories {
    /// The current version, if one is stored.
    pub fn current(&self, store: &dyn CaseStore) -> Result<Option<Arc<Directory>>, StoreError> {
        if let Some(d) = self.current.read().clone() {
            return Ok(Some(d));
        }
        let Some(v) = store.current_directory_version()? else {
            return Ok(None);
        };
        let d = self.version(store, v)?;
        *self.current.write() = Some(d.clone());
        Ok(Some(d))
    }

    /// A stored version.
    pub fn version(
        &self,
        store: &dyn CaseStore,
        version: u64,
    ) -> Result<Arc<Directory>, StoreError> {
        if let Some(d) = self.versions.read().get(&version) {
            return Ok(d.clone());
        }
        let Some(r) = store.directory_record(version)? else {
            return Err(StoreError::Invalid(format!(
                "directory version {version} does not exist"
            )));
        };
        let d = Arc::new(Directory::from_json(version, &r.directory, &r.categories)?);
        self.versions.write().insert(version, d.clone());
        Ok(d)
    }

    /// Checks and stores a new version, and makes it current.
    pub fn put(
        &self,
        store: &dyn CaseStore,
        directory_json: &str,
        categories_json: &str,
    ) -> Result<Arc<Directory>, StoreError> {
        // Checked before it is stored; the version number is the store's to give.
        Directory::from_json(0, directory_json, categories_json)?;
        let version = store.put_directory(&DirectoryRecord {
            directory: directory_json.to_owned(),
            categories: categories_json.to_owned(),
        })?;
        let d = Arc::new(Directory::from_json(
            version,
            directory_json,
            categories_json,
        )?);
        self.versions.write().insert(version, d.clone());
        *self.current.write() = Some(d.clone());
        Ok(d)
    }
}
