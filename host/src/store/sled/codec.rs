//! How the sled engine stores case and event values: JSON, zstd-compressed with a
//! dictionary the store trains from its own first cases.
//!
//! A case is about a kilobyte of JSON whose field names and most values (districts, units,
//! categories, statuses) repeat from case to case, and a write's events are decision records
//! whose inputs repeat the case: compressed one value at a time without a dictionary they
//! shrink by a third; with a dictionary trained on the city's own cases, by ten times (see
//! BENCHMARKS.md, "a year of cases"). The dictionaries are trained once, in the background,
//! when the store first holds [`TRAIN_AT`] cases, and kept in the `meta` tree (synced to disk
//! before any value uses them); each compressed value names its dictionary in its zstd
//! frame header. Values written before — plain JSON cases, events compressed without a
//! dictionary, plain JSON events of older stores — read as they are.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use zstd::dict::{DecoderDictionary, EncoderDictionary};
use zstd::zstd_safe::{self, CCtx, DCtx};

use crate::store::StoreError;

/// How a zstd frame starts (JSON never does).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// zstd's level: the fastest levels take most of what repetitive JSON gives.
const LEVEL: i32 = 3;

/// Cases the store holds when it trains its dictionaries (and the most it samples).
pub const TRAIN_AT: u64 = 1_000;

/// Largest value a frame may claim to hold: a corrupt header must not make a read allocate
/// gigabytes.
const MAX_VALUE: u64 = 256 << 20;

/// What a dictionary compresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Case values.
    Cases,
    /// Event values (one write's events).
    Events,
}

impl Kind {
    /// The `meta` key of its dictionary.
    pub fn meta_key(self) -> &'static [u8] {
        match self {
            Kind::Cases => b"dict:cases",
            Kind::Events => b"dict:events",
        }
    }

    /// Largest dictionary trained for it.
    fn max_size(self) -> usize {
        match self {
            Kind::Cases => 64 << 10,
            Kind::Events => 112 << 10,
        }
    }
}

/// Makes a new dictionary of a kind durable before it is used.
pub type SaveDictionary<'a> = dyn Fn(Kind, &[u8]) -> Result<(), StoreError> + 'a;

/// The store's dictionaries.
#[derive(Default)]
pub struct Codec {
    /// Per kind, the dictionary new values are written with.
    writers: RwLock<HashMap<Kind, Arc<EncoderDictionary<'static>>>>,
    /// Every dictionary, by the id frames name it by.
    readers: RwLock<HashMap<u32, Arc<DecoderDictionary<'static>>>>,
    /// Set while a training runs (or once it ran), so only one is started.
    training: AtomicBool,
}

thread_local! {
    // zstd's contexts hold their work memory: one per thread, not one per value.
    static CCTX: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
    static DCTX: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
}

fn io(what: &str, code: usize) -> StoreError {
    StoreError::Io(format!("{what}: {}", zstd_safe::get_error_name(code)))
}

impl Codec {
    /// Installs a dictionary of `kind` (as stored in `meta`).
    pub fn install(&self, kind: Kind, bytes: &[u8]) -> Result<(), StoreError> {
        let id = zstd_safe::get_dict_id_from_dict(bytes)
            .ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(kind.meta_key()).into_owned(),
                message: "not a zstd dictionary".into(),
            })?
            .get();
        self.readers
            .write()
            .insert(id, Arc::new(DecoderDictionary::copy(bytes)));
        self.writers
            .write()
            .insert(kind, Arc::new(EncoderDictionary::copy(bytes, LEVEL)));
        Ok(())
    }

    /// Whether a dictionary of `kind` is in use.
    pub fn has(&self, kind: Kind) -> bool {
        self.writers.read().contains_key(&kind)
    }

    /// Claims the one training of this store; `false` if it is taken or done.
    pub fn claim_training(&self) -> bool {
        if self.has(Kind::Cases) && self.has(Kind::Events) {
            return false;
        }
        !self.training.swap(true, Ordering::AcqRel)
    }

    /// A value of `kind` as stored: compressed with its dictionary; without one, events are
    /// compressed alone and cases left as JSON (alone they shrink too little to pay for it).
    pub fn encode(&self, kind: Kind, json: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let dict = self.writers.read().get(&kind).cloned();
        if dict.is_none() && kind == Kind::Cases {
            return Ok(json);
        }
        let mut out = Vec::with_capacity(zstd_safe::compress_bound(json.len()));
        CCTX.with(|c| {
            let mut c = c.borrow_mut();
            match &dict {
                Some(d) => c.compress_using_cdict(&mut out, &json, d.as_cdict()),
                None => c.compress(&mut out, &json, LEVEL),
            }
        })
        .map_err(|code| io("compressing a value", code))?;
        Ok(out)
    }

    /// A stored value's JSON: itself, or decompressed with the dictionary its frame names.
    pub fn json<'a>(&self, key: &[u8], bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, StoreError> {
        if !bytes.starts_with(&ZSTD_MAGIC) {
            return Ok(Cow::Borrowed(bytes));
        }
        let corrupt = |message: String| StoreError::Corrupt {
            key: hex::encode(key),
            message,
        };
        let size = match zstd_safe::get_frame_content_size(bytes) {
            Ok(Some(n)) if n <= MAX_VALUE => n as usize,
            other => {
                return Err(corrupt(format!(
                    "a compressed value whose size is unknown or too large ({other:?})"
                )));
            }
        };
        let dict = match zstd_safe::get_dict_id_from_frame(bytes) {
            Some(id) => Some(self.readers.read().get(&id.get()).cloned().ok_or_else(|| {
                corrupt(format!(
                    "compressed with dictionary {id}, which this store does not hold"
                ))
            })?),
            None => None,
        };
        let mut out = Vec::with_capacity(size);
        DCTX.with(|d| {
            let mut d = d.borrow_mut();
            match &dict {
                Some(dict) => d.decompress_using_ddict(&mut out, bytes, dict.as_ddict()),
                None => d.decompress(&mut out, bytes),
            }
        })
        .map_err(|code| {
            corrupt(format!(
                "does not decompress: {}",
                zstd_safe::get_error_name(code)
            ))
        })?;
        Ok(Cow::Owned(out))
    }

    /// Trains the dictionaries still missing from `samples` of each kind (JSON values),
    /// saves each with `save` (which must make it durable) and installs it. A kind with too
    /// few samples, or whose training fails, is left for a later training.
    pub fn train(
        &self,
        samples: &[(Kind, Vec<Vec<u8>>)],
        save: &SaveDictionary<'_>,
    ) -> Result<usize, StoreError> {
        let mut trained = 0;
        for (kind, values) in samples {
            if self.has(*kind) || values.len() < 100 {
                continue;
            }
            let dict = match zstd::dict::from_samples(values, kind.max_size()) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(kind = ?kind, error = %e, "could not train a compression dictionary; values stay compressed without one");
                    continue;
                }
            };
            let id = zstd_safe::get_dict_id_from_dict(&dict).map(|i| i.get());
            if id.is_none_or(|id| self.readers.read().contains_key(&id)) {
                continue;
            }
            save(*kind, &dict)?;
            self.install(*kind, &dict)?;
            trained += 1;
        }
        if trained < 2 && !(self.has(Kind::Cases) && self.has(Kind::Events)) {
            // Let a later trigger try the missing kind again.
            self.training.store(false, Ordering::Release);
        }
        Ok(trained)
    }
}
