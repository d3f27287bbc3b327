//! Plug-in versions per district and hook: deployment, activation, rollback, suspension.
//!
//! A version is identified by the sha256 of its component bytes. Each (district, hook)
//! slot has at most one active version; the previous ones are kept, newest last, for
//! rollback. The active versions are held in memory as compiled, pre-linked plug-ins
//! behind `Arc`s: switching a slot swaps the `Arc`, so an evaluation in flight finishes
//! on the version it started with. A district without its own version for a hook uses
//! the city default's ([`CITY`]).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::model::Millis;
use crate::runtime::{Hook, Limits, Plugin, PluginError, Runtime};
use crate::store::{CaseStore, StoreError, update_record};

/// The scope of the city default plug-ins.
pub const CITY: &str = "city";
/// Consecutive failures after which an active version is suspended.
pub const DEFAULT_SUSPEND_AFTER: u32 = 5;
/// `suspend_after` that turns suspension off altogether (for benchmarks that keep a
/// failing version running on purpose).
pub const NEVER_SUSPEND: u32 = u32::MAX;
/// The latest decisions a version's failure rate is taken over.
pub const RATE_WINDOW: u32 = 32;
/// A version failing at least this share (percent) of its last [`RATE_WINDOW`] decisions is
/// suspended too, though it never fails [`DEFAULT_SUSPEND_AFTER`] times in a row (a rule
/// that fails three cases in four once stayed active over 2,000 intakes).
pub const SUSPEND_RATE_PERCENT: u32 = 50;

const BLOBS: &str = "plugin-blobs";
const UPLOADS: &str = "plugin-uploads";
const VERSIONS: &str = "plugin-versions";
const SLOTS: &str = "plugin-slots";

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The component was refused by the runtime.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// No such version in this slot.
    #[error("plug-in version {version} is not deployed for {district}/{hook}")]
    UnknownVersion {
        /// The district (or `city`).
        district: String,
        /// The hook.
        hook: &'static str,
        /// The version asked for.
        version: String,
    },
    /// A version prefix matches more than one version of the slot.
    #[error("version prefix {prefix} matches {} versions of {district}/{hook}: {}; give more of it", matches.len(), matches.join(", "))]
    AmbiguousVersion {
        /// The district (or `city`).
        district: String,
        /// The hook.
        hook: &'static str,
        /// What was asked for.
        prefix: String,
        /// The versions it matches.
        matches: Vec<String>,
    },
    /// Nothing to roll back to.
    #[error("{district}/{hook} has no previous version to roll back to")]
    NoPrevious {
        /// The district (or `city`).
        district: String,
        /// The hook.
        hook: &'static str,
    },
    /// The same component is already deployed with other settings.
    #[error(
        "this component is already deployed for {district}/{hook} as {version} with another configuration or limits; versions are immutable"
    )]
    DeployedDifferently {
        /// The district (or `city`).
        district: String,
        /// The hook.
        hook: &'static str,
        /// The existing version.
        version: String,
    },
    /// No shadow candidate is attached.
    #[error("{district}/{hook} has no shadow candidate")]
    NoShadow {
        /// The district.
        district: String,
        /// The hook.
        hook: &'static str,
    },
    /// A limit asked for is over what this deployer may set.
    #[error(
        "{what} {asked} is over the {cap} {whose} may set; ask for less, or ask the city admin"
    )]
    OverCap {
        /// Which limit.
        what: &'static str,
        /// What was asked.
        asked: u64,
        /// The cap.
        cap: u64,
        /// Whose cap it is (`a district admin`, `this host`).
        whose: &'static str,
    },
    /// The name is not a plain identifier.
    #[error(
        "plug-in name {0:?} must be 1-64 characters of a-z, 0-9, '.', '-' and '_' (it becomes a metrics label and a log field)"
    )]
    BadName(String),
    /// The district has used its upload quota.
    #[error(
        "{district} already stores {detail}; delete versions that were never activated (DELETE .../versions/{{version}}) before uploading more"
    )]
    Quota {
        /// The district.
        district: String,
        /// What is used and the quota.
        detail: String,
    },
    /// The version cannot be deleted.
    #[error("version {version} cannot be deleted: {why}")]
    InUse {
        /// The version.
        version: String,
        /// Why.
        why: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How much each district may store of plug-in versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Versions per district (all hooks).
    pub versions: usize,
    /// Bytes of components per district (all hooks).
    pub bytes: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            versions: 100,
            // About fifty versions of a Python plug-in (componentize-py, ~18 MB each).
            bytes: 1 << 30,
        }
    }
}

/// What became of an upload, kept so that its final answer (accepted, or refused and why)
/// can be read after a compile that outlasted the upload's request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// The district (or `city`).
    pub district: String,
    /// The hook.
    pub hook: Hook,
    /// sha256 of the component.
    pub version: String,
    /// `compiling`, `accepted` or `refused`.
    pub status: String,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The version record, once accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<VersionRecord>,
    /// When the upload started.
    pub at: Millis,
}

/// A plug-in name: what a metrics label and a log field can carry as is.
pub fn check_name(name: &str) -> Result<(), RegistryError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BadName(
            crate::text::escape_for_log(name).chars().take(80).collect(),
        ))
    }
}

fn new_shadow(active: Arc<Active>) -> Shadow {
    Shadow {
        active,
        unflushed: Default::default(),
    }
}

/// A deployed version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// District (or `city`).
    pub district: String,
    /// Hook.
    pub hook: Hook,
    /// sha256 of the component.
    pub version: String,
    /// Name given at deployment.
    pub name: String,
    /// Component size in bytes.
    pub size: usize,
    /// Who deployed it (token id).
    pub deployed_by: String,
    /// When.
    pub deployed_at: Millis,
    /// Its limits.
    pub limits: Limits,
    /// Its configuration.
    pub config: String,
}

/// Something that happened to a slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotEvent {
    /// When.
    pub at: Millis,
    /// Who (token id or `system`).
    pub actor: String,
    /// `activated`, `rolled-back`, `suspended`, `promoted`.
    pub what: String,
    /// The version concerned.
    pub version: String,
    /// Details.
    #[serde(default)]
    pub detail: String,
}

impl SlotEvent {
    fn new(
        at: Millis,
        actor: impl Into<String>,
        what: &str,
        version: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            at,
            actor: actor.into(),
            what: what.into(),
            version: version.into(),
            detail: detail.into(),
        }
    }
}

/// A slot's state: the active version and the ones before it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotRecord {
    /// A candidate evaluated alongside the active version, without effect.
    #[serde(default)]
    pub shadow: Option<String>,
    /// The active version.
    pub active: Option<String>,
    /// Previously active versions, newest last.
    pub previous: Vec<String>,
    /// Versions suspended after repeated failures.
    pub suspended: Vec<String>,
    /// What happened, oldest first.
    pub history: Vec<SlotEvent>,
}

/// An active version, compiled and ready.
#[derive(Debug)]
pub struct Active {
    /// Its record.
    pub record: VersionRecord,
    /// The compiled plug-in.
    pub plugin: Arc<Plugin>,
    outcomes: parking_lot::Mutex<Outcomes>,
}

/// A version's recent outcomes: the current run of failures and the last
/// [`RATE_WINDOW`] results as bits (1 = failed).
#[derive(Debug, Default)]
struct Outcomes {
    run: u32,
    window: u64,
    seen: u32,
    tripped: bool,
}

impl Outcomes {
    /// Records one outcome; returns why the version must be suspended, once.
    fn record(&mut self, ok: bool, suspend_after: u32) -> Option<String> {
        if suspend_after == NEVER_SUSPEND {
            return None;
        }
        self.run = if ok { 0 } else { self.run + 1 };
        let mask = (1u64 << RATE_WINDOW) - 1;
        self.window = ((self.window << 1) | u64::from(!ok)) & mask;
        self.seen = (self.seen + 1).min(RATE_WINDOW);
        if self.tripped || ok {
            return None;
        }
        let failed = self.window.count_ones();
        let why = if self.run >= suspend_after {
            format!("{} consecutive failures", self.run)
        } else if self.seen == RATE_WINDOW && failed * 100 >= SUSPEND_RATE_PERCENT * RATE_WINDOW {
            format!("{failed} of its last {RATE_WINDOW} decisions failed")
        } else {
            return None;
        };
        self.tripped = true;
        Some(why)
    }
}

/// A disagreement (or failure) of a shadow candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowNote {
    /// The case.
    pub case: String,
    /// The active version's output.
    pub active: serde_json::Value,
    /// The candidate's output, or its failure.
    pub candidate: serde_json::Value,
}

/// What a shadow candidate has done: kept in the store (collection [`SHADOW_STATS`]), where
/// every host adds what its own evaluations counted, so the figures add up across hosts and
/// survive a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowStats {
    /// Cases evaluated.
    pub evaluated: u64,
    /// Cases where it agreed.
    pub agreed: u64,
    /// Cases where it disagreed.
    pub disagreed: u64,
    /// Cases where it failed.
    pub failed: u64,
    /// The latest disagreements and failures (at most [`SHADOW_NOTES`]).
    pub notes: std::collections::VecDeque<ShadowNote>,
}

/// Disagreements and failures kept per shadow candidate.
pub const SHADOW_NOTES: usize = 100;

/// Where shadow statistics are kept, by `district/hook/version`.
pub const SHADOW_STATS: &str = "shadow-stats";

impl ShadowStats {
    /// Adds `more` (counted later) to these.
    fn add(&mut self, more: ShadowStats) {
        self.evaluated += more.evaluated;
        self.agreed += more.agreed;
        self.disagreed += more.disagreed;
        self.failed += more.failed;
        self.notes.extend(more.notes);
        while self.notes.len() > SHADOW_NOTES {
            self.notes.pop_front();
        }
    }

    fn is_empty(&self) -> bool {
        self.evaluated == 0 && self.notes.is_empty()
    }
}

/// A shadow candidate, and what this host counted of it since it last added its counts to
/// the store ([`Registry::flush_shadows`]).
#[derive(Debug)]
pub struct Shadow {
    /// The candidate.
    pub active: Arc<Active>,
    unflushed: parking_lot::Mutex<ShadowStats>,
}

impl Shadow {
    /// Records one comparison.
    pub fn observe(
        &self,
        case: &str,
        active: &serde_json::Value,
        candidate: Result<serde_json::Value, String>,
    ) {
        let mut s = self.unflushed.lock();
        s.evaluated += 1;
        let note = match candidate {
            Ok(c) if c == *active => {
                s.agreed += 1;
                return;
            }
            Ok(c) => {
                s.disagreed += 1;
                c
            }
            Err(f) => {
                s.failed += 1;
                serde_json::json!({ "failure": f })
            }
        };
        if s.notes.len() == SHADOW_NOTES {
            s.notes.pop_front();
        }
        s.notes.push_back(ShadowNote {
            case: case.to_owned(),
            active: active.clone(),
            candidate: note,
        });
    }

    /// The key of its statistics in [`SHADOW_STATS`].
    fn key(&self) -> String {
        let r = &self.active.record;
        version_key(&r.district, r.hook, &r.version)
    }

    /// A summary for the API: what the store holds plus what this host has not added yet.
    fn summary(&self, mut stored: ShadowStats) -> serde_json::Value {
        stored.add(self.unflushed.lock().clone());
        serde_json::json!({
            "version": self.active.record.version,
            "name": self.active.record.name,
            "evaluated": stored.evaluated,
            "agreed": stored.agreed,
            "disagreed": stored.disagreed,
            "failed": stored.failed,
            "notes": stored.notes,
        })
    }
}

/// What to evaluate for a district and hook.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The version to run.
    pub active: Arc<Active>,
    /// It is the city default standing in for the district.
    pub is_city_default: bool,
}

type SlotKey = (String, Hook);

/// The plug-in registry.
pub struct Registry {
    store: Arc<dyn CaseStore>,
    runtime: Arc<Runtime>,
    active: RwLock<HashMap<SlotKey, Arc<Active>>>,
    shadows: RwLock<HashMap<SlotKey, Arc<Shadow>>>,
    suspend_after: u32,
    quota: Quota,
    /// Uploads being compiled now (by upload key).
    compiling: parking_lot::Mutex<std::collections::HashSet<String>>,
}

fn upload_key(district: &str, hook: Hook, version: &str) -> String {
    format!("{district}/{}/{version}", hook.as_str())
}

fn slot_key(district: &str, hook: Hook) -> String {
    format!("{district}/{}", hook.as_str())
}

/// Fewest hex digits of a version that name it (see [`Registry::resolve_version`]).
pub const MIN_VERSION_PREFIX: usize = 8;

fn version_key(district: &str, hook: Hook, version: &str) -> String {
    format!("{district}/{}/{version}", hook.as_str())
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("registry records serialize")
}

fn parse<T: for<'de> Deserialize<'de>>(what: &str, b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt {
        key: what.to_owned(),
        message: e.to_string(),
    })
}

impl Registry {
    /// A registry over `store`, loading every active version into `runtime`.
    pub fn open(
        store: Arc<dyn CaseStore>,
        runtime: Arc<Runtime>,
        suspend_after: u32,
        quota: Quota,
    ) -> Result<Self, RegistryError> {
        let reg = Registry {
            store,
            runtime,
            active: RwLock::new(HashMap::new()),
            shadows: RwLock::new(HashMap::new()),
            suspend_after: suspend_after.max(1),
            quota,
            compiling: Default::default(),
        };
        reg.refresh()?;
        Ok(reg)
    }

    /// Reads every slot again and brings the versions in force here in line with it: what
    /// another host activated, rolled back, suspended or shadowed is in force here once this
    /// returns (compiled from the host's cache of components by digest, or from the store's
    /// bytes on first use). A version that cannot be loaded here leaves its slot to the city
    /// default, logged, as at start-up. Returns how many slots changed.
    pub fn refresh(&self) -> Result<usize, RegistryError> {
        let mut changed = 0;
        let mut active_keys = std::collections::HashSet::new();
        let mut shadow_keys = std::collections::HashSet::new();
        for (key, bytes) in self.store.record_scan(SLOTS, "")? {
            let slot: SlotRecord = parse(&key, &bytes)?;
            let Some((district, hook)) = key.split_once('/') else {
                continue;
            };
            let Ok(hook) = hook.parse::<Hook>() else {
                continue;
            };
            let k = (district.to_owned(), hook);
            let running = |map: &RwLock<HashMap<SlotKey, Arc<Active>>>| {
                map.read().get(&k).map(|a| a.record.version.clone())
            };
            if let Some(v) = &slot.active {
                active_keys.insert(k.clone());
                if running(&self.active).as_deref() != Some(v) {
                    changed += 1;
                    match self.load(district, hook, v) {
                        Ok(a) => drop(self.active.write().insert(k.clone(), a)),
                        Err(e) => {
                            self.active.write().remove(&k);
                            tracing::error!(%district, hook = hook.as_str(), version = %v, error = %crate::text::escape_for_log(&e.to_string()), "active plug-in could not be loaded; the slot falls back to the city default");
                        }
                    }
                }
            }
            if let Some(v) = &slot.shadow {
                shadow_keys.insert(k.clone());
                let shadowing = self
                    .shadows
                    .read()
                    .get(&k)
                    .map(|s| s.active.record.version.clone());
                if shadowing.as_deref() != Some(v) {
                    changed += 1;
                    match self.load(district, hook, v) {
                        Ok(a) => drop(self.shadows.write().insert(k, Arc::new(new_shadow(a)))),
                        Err(e) => {
                            self.shadows.write().remove(&k);
                            tracing::error!(%district, hook = hook.as_str(), version = %v, error = %crate::text::escape_for_log(&e.to_string()), "shadow plug-in could not be loaded");
                        }
                    }
                }
            }
        }
        let mut active = self.active.write();
        let before = active.len();
        active.retain(|k, _| active_keys.contains(k));
        changed += before - active.len();
        drop(active);
        let mut shadows = self.shadows.write();
        let before = shadows.len();
        shadows.retain(|k, _| shadow_keys.contains(k));
        changed += before - shadows.len();
        Ok(changed)
    }

    fn load(
        &self,
        district: &str,
        hook: Hook,
        version: &str,
    ) -> Result<Arc<Active>, RegistryError> {
        let record = self.version(district, hook, version)?;
        let bytes = self
            .store
            .record_get(BLOBS, version)?
            .ok_or_else(|| StoreError::Corrupt {
                key: format!("{BLOBS}/{version}"),
                message: "component bytes are missing".into(),
            })?;
        let plugin = self
            .runtime
            .load(&record.name, &bytes, record.limits, &record.config)?;
        Ok(Arc::new(Active {
            record,
            plugin,
            outcomes: Default::default(),
        }))
    }

    /// The full version a slot's version or version prefix names — the tools print the
    /// first 12 hex digits (`name@7304805233ef`), and people paste what they see. A prefix
    /// must be at least [`MIN_VERSION_PREFIX`] digits; one that matches two versions is
    /// refused, naming both.
    pub fn resolve_version(
        &self,
        district: &str,
        hook: Hook,
        version: &str,
    ) -> Result<String, RegistryError> {
        let unknown = || RegistryError::UnknownVersion {
            district: district.to_owned(),
            hook: hook.as_str(),
            version: version.to_owned(),
        };
        if version.len() < MIN_VERSION_PREFIX || !version.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unknown());
        }
        let prefix = version_key(district, hook, &version.to_ascii_lowercase());
        let matches: Vec<String> = self
            .store
            .record_scan(VERSIONS, &prefix)?
            .into_iter()
            .filter_map(|(k, _)| k.rsplit('/').next().map(str::to_owned))
            .collect();
        match matches.len() {
            0 => Err(unknown()),
            1 => Ok(matches.into_iter().next().unwrap_or_default()),
            _ => Err(RegistryError::AmbiguousVersion {
                district: district.to_owned(),
                hook: hook.as_str(),
                prefix: version.to_owned(),
                matches,
            }),
        }
    }

    /// A deployed version (or a prefix of one, see [`Registry::resolve_version`]), compiled and
    /// ready to evaluate (for dry runs and backtests of candidates).
    pub fn plugin(
        &self,
        district: &str,
        hook: Hook,
        version: &str,
    ) -> Result<Arc<Plugin>, RegistryError> {
        let version = self.resolve_version(district, hook, version)?;
        if let Some(a) = self.active.read().get(&(district.to_owned(), hook))
            && a.record.version == version
        {
            return Ok(a.plugin.clone());
        }
        Ok(self.load(district, hook, &version)?.plugin.clone())
    }

    /// A version, by its id alone (for replaying a recorded decision), compiled and ready.
    pub fn plugin_by_version(&self, version: &str) -> Result<Arc<Plugin>, RegistryError> {
        let suffix = format!("/{version}");
        let (key, bytes) = self
            .store
            .record_scan(VERSIONS, "")?
            .into_iter()
            .find(|(k, _)| k.ends_with(&suffix))
            .ok_or_else(|| RegistryError::UnknownVersion {
                district: "any".into(),
                hook: "any",
                version: version.to_owned(),
            })?;
        let record: VersionRecord = parse(&key, &bytes)?;
        self.plugin(&record.district, record.hook, version)
    }

    /// A deployed version's record.
    pub fn version(
        &self,
        district: &str,
        hook: Hook,
        version: &str,
    ) -> Result<VersionRecord, RegistryError> {
        let key = version_key(district, hook, version);
        let bytes = self.store.record_get(VERSIONS, &key)?.ok_or_else(|| {
            RegistryError::UnknownVersion {
                district: district.to_owned(),
                hook: hook.as_str(),
                version: version.to_owned(),
            }
        })?;
        Ok(parse(&key, &bytes)?)
    }

    /// A version's component bytes.
    pub fn component(&self, version: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        Ok(self.store.record_get(BLOBS, version)?)
    }

    /// Validates and stores a version (not activated). Deploying the same bytes again
    /// returns the existing record.
    #[allow(clippy::too_many_arguments)]
    pub fn deploy(
        &self,
        district: &str,
        hook: Hook,
        name: &str,
        bytes: &[u8],
        limits: Limits,
        config: &str,
        actor: &str,
        now: Millis,
    ) -> Result<(VersionRecord, bool), RegistryError> {
        check_name(name)?;
        let plugin = self.runtime.load(name, bytes, limits, config)?;
        let version = plugin.id().version.clone();
        if let Ok(existing) = self.version(district, hook, &version) {
            if existing.config != config || existing.limits != plugin.limits() {
                return Err(RegistryError::DeployedDifferently {
                    district: district.to_owned(),
                    hook: hook.as_str(),
                    version,
                });
            }
            return Ok((existing, false));
        }
        let record = VersionRecord {
            district: district.to_owned(),
            hook,
            version: version.clone(),
            name: name.to_owned(),
            size: bytes.len(),
            deployed_by: actor.to_owned(),
            deployed_at: now,
            limits: plugin.limits(),
            config: config.to_owned(),
        };
        self.store
            .record_put(BLOBS, &[(version.clone(), bytes.to_vec())])?;
        self.store.record_put(
            VERSIONS,
            &[(version_key(district, hook, &version), json(&record))],
        )?;
        Ok((record, true))
    }

    /// Checks an upload before anything is compiled: the name, the limits against `caps`
    /// (`whose` names them in the refusal), and the district's quota.
    pub fn admit(
        &self,
        district: &str,
        name: &str,
        limits: Limits,
        size: usize,
        caps: Limits,
        whose: &'static str,
    ) -> Result<(), RegistryError> {
        check_name(name)?;
        for (what, asked, cap) in [
            ("fuel", limits.fuel, caps.fuel),
            (
                "a time limit of (ms)",
                limits.timeout.as_millis() as u64,
                caps.timeout.as_millis() as u64,
            ),
            (
                "a memory cap of (bytes)",
                limits.memory_bytes,
                caps.memory_bytes,
            ),
        ] {
            if asked > cap {
                return Err(RegistryError::OverCap {
                    what,
                    asked,
                    cap,
                    whose,
                });
            }
        }
        let mine: Vec<VersionRecord> = self
            .store
            .record_scan(VERSIONS, &format!("{district}/"))?
            .into_iter()
            .map(|(k, v)| parse(&k, &v))
            .collect::<Result<_, _>>()?;
        let bytes: u64 = mine.iter().map(|v| v.size as u64).sum();
        if mine.len() >= self.quota.versions || bytes + size as u64 > self.quota.bytes {
            return Err(RegistryError::Quota {
                district: district.to_owned(),
                detail: format!(
                    "{} versions of {bytes} bytes (quota: {} versions, {} bytes)",
                    mine.len(),
                    self.quota.versions,
                    self.quota.bytes
                ),
            });
        }
        Ok(())
    }

    /// Marks an upload as compiling; `false` if the same one is compiling already.
    pub fn begin_upload(&self, district: &str, hook: Hook, version: &str) -> bool {
        self.compiling
            .lock()
            .insert(upload_key(district, hook, version))
    }

    /// Records an upload's final answer and clears its compiling mark.
    pub fn finish_upload(
        &self,
        district: &str,
        hook: Hook,
        version: &str,
        at: Millis,
        outcome: &Result<(VersionRecord, bool), RegistryError>,
    ) -> Result<(), RegistryError> {
        let key = upload_key(district, hook, version);
        let (status, reason, record) = match outcome {
            Ok((r, _)) => ("accepted", None, Some(r.clone())),
            Err(e) => ("refused", Some(e.to_string()), None),
        };
        let upload = Upload {
            district: district.to_owned(),
            hook,
            version: version.to_owned(),
            status: status.into(),
            reason,
            record,
            at,
        };
        let stored = self
            .store
            .record_put(UPLOADS, &[(key.clone(), json(&upload))]);
        self.compiling.lock().remove(&key);
        Ok(stored?)
    }

    /// What became of an upload: compiling now, or its recorded answer.
    pub fn upload(
        &self,
        district: &str,
        hook: Hook,
        version: &str,
    ) -> Result<Option<Upload>, RegistryError> {
        let key = upload_key(district, hook, version);
        if self.compiling.lock().contains(&key) {
            return Ok(Some(Upload {
                district: district.to_owned(),
                hook,
                version: version.to_owned(),
                status: "compiling".into(),
                reason: None,
                record: None,
                at: 0,
            }));
        }
        Ok(self
            .store
            .record_get(UPLOADS, &key)?
            .map(|b| parse(&key, &b))
            .transpose()?)
    }

    /// Deletes a version that never decided anything: never activated, shadowed or
    /// promoted (a version that did is kept for replay). Its component bytes go too unless
    /// another slot deployed the same bytes.
    pub fn delete(&self, district: &str, hook: Hook, version: &str) -> Result<(), RegistryError> {
        self.version(district, hook, version)?;
        let slot = self.slot(district, hook)?;
        if slot.history.iter().any(|e| e.version == version)
            || slot.shadow.as_deref() == Some(version)
        {
            return Err(RegistryError::InUse {
                version: version.to_owned(),
                why: "it was activated or ran in shadow, so decisions may name it; it is kept for replay".into(),
            });
        }
        let key = version_key(district, hook, version);
        self.store.record_remove(VERSIONS, &key)?;
        self.store
            .record_remove(UPLOADS, &upload_key(district, hook, version))?;
        let suffix = format!("/{version}");
        let shared = self
            .store
            .record_scan(VERSIONS, "")?
            .iter()
            .any(|(k, _)| k.ends_with(&suffix));
        if !shared {
            self.store.record_remove(BLOBS, version)?;
        }
        Ok(())
    }

    /// Versions deployed for a slot, oldest first, and the slot's state.
    pub fn list(
        &self,
        district: &str,
        hook: Hook,
    ) -> Result<(Vec<VersionRecord>, SlotRecord), RegistryError> {
        let mut versions: Vec<VersionRecord> = self
            .store
            .record_scan(VERSIONS, &format!("{}/", slot_key(district, hook)))?
            .into_iter()
            .map(|(k, v)| parse(&k, &v))
            .collect::<Result<_, _>>()?;
        versions.sort_by(|a, b| {
            a.deployed_at
                .cmp(&b.deployed_at)
                .then(a.version.cmp(&b.version))
        });
        Ok((versions, self.slot(district, hook)?))
    }

    /// A slot's state.
    pub fn slot(&self, district: &str, hook: Hook) -> Result<SlotRecord, RegistryError> {
        let key = slot_key(district, hook);
        Ok(self
            .store
            .record_get(SLOTS, &key)?
            .map(|b| parse(&key, &b))
            .transpose()?
            .unwrap_or_default())
    }

    /// Makes a deployed version the active one; the previous active version is kept for
    /// rollback. Compiles before switching, so a failure leaves the slot as it was.
    pub fn activate(
        &self,
        district: &str,
        hook: Hook,
        version: &str,
        actor: &str,
        now: Millis,
    ) -> Result<SlotRecord, RegistryError> {
        let active = self.load(district, hook, version)?;
        let slot = self.update_slot(district, hook, |s| {
            if s.active.as_deref() != Some(version) {
                if let Some(old) = s.active.take() {
                    s.previous.push(old);
                }
                s.previous.retain(|v| v != version);
                s.active = Some(version.to_owned());
            }
            s.suspended.retain(|v| v != version);
            s.history.push(SlotEvent::new(
                now,
                actor,
                "activated",
                version.to_owned(),
                String::new(),
            ));
        })?;
        self.active
            .write()
            .insert((district.to_owned(), hook), active);
        Ok(slot)
    }

    /// Re-activates the previous version.
    pub fn rollback(
        &self,
        district: &str,
        hook: Hook,
        actor: &str,
        now: Millis,
    ) -> Result<SlotRecord, RegistryError> {
        let slot = self.slot(district, hook)?;
        let Some(previous) = slot.previous.last().cloned() else {
            return Err(RegistryError::NoPrevious {
                district: district.to_owned(),
                hook: hook.as_str(),
            });
        };
        let active = self.load(district, hook, &previous)?;
        let slot = self.update_slot(district, hook, |s| {
            let from = s.active.take().unwrap_or_default();
            s.previous.retain(|v| *v != previous);
            s.active = Some(previous.clone());
            s.history.push(SlotEvent::new(
                now,
                actor,
                "rolled-back",
                previous.clone(),
                format!("from {from}"),
            ));
        })?;
        self.active
            .write()
            .insert((district.to_owned(), hook), active);
        Ok(slot)
    }

    /// The version to run for a district's hook: its own, else the city default's.
    pub fn resolve(&self, district: &str, hook: Hook) -> Option<Resolved> {
        let map = self.active.read();
        if let Some(a) = map.get(&(district.to_owned(), hook)) {
            return Some(Resolved {
                active: a.clone(),
                is_city_default: district == CITY,
            });
        }
        map.get(&(CITY.to_owned(), hook)).map(|a| Resolved {
            active: a.clone(),
            is_city_default: true,
        })
    }

    /// Attaches a deployed version as the slot's shadow candidate (replacing any other).
    pub fn attach_shadow(
        &self,
        district: &str,
        hook: Hook,
        version: &str,
        actor: &str,
        now: Millis,
    ) -> Result<SlotRecord, RegistryError> {
        let a = self.load(district, hook, version)?;
        let slot = self.update_slot(district, hook, |s| {
            s.shadow = Some(version.to_owned());
            s.history.push(SlotEvent::new(
                now,
                actor,
                "shadow-attached",
                version.to_owned(),
                String::new(),
            ));
        })?;
        self.shadows
            .write()
            .insert((district.to_owned(), hook), Arc::new(new_shadow(a)));
        Ok(slot)
    }

    /// Detaches the shadow candidate.
    pub fn detach_shadow(
        &self,
        district: &str,
        hook: Hook,
        actor: &str,
        now: Millis,
    ) -> Result<SlotRecord, RegistryError> {
        let slot = self.update_slot(district, hook, |s| {
            if let Some(v) = s.shadow.take() {
                s.history.push(SlotEvent::new(
                    now,
                    actor,
                    "shadow-detached",
                    v,
                    String::new(),
                ));
            }
        })?;
        self.shadows.write().remove(&(district.to_owned(), hook));
        Ok(slot)
    }

    /// Makes the shadow candidate the active version, in one call; recorded in the history.
    pub fn promote_shadow(
        &self,
        district: &str,
        hook: Hook,
        actor: &str,
        now: Millis,
    ) -> Result<SlotRecord, RegistryError> {
        let Some(shadow) = self.shadow(district, hook) else {
            return Err(RegistryError::NoShadow {
                district: district.to_owned(),
                hook: hook.as_str(),
            });
        };
        let version = shadow.active.record.version.clone();
        self.flush_shadows()?;
        let summary = shadow.summary(self.stored_stats(&shadow)?).to_string();
        self.activate(district, hook, &version, actor, now)?;
        let slot = self.update_slot(district, hook, |s| {
            s.shadow = None;
            s.history.push(SlotEvent::new(
                now,
                actor,
                "promoted",
                version.clone(),
                summary.clone(),
            ));
        })?;
        self.shadows.write().remove(&(district.to_owned(), hook));
        Ok(slot)
    }

    /// What the slot's shadow candidate has done, on every host: `None` without one.
    pub fn shadow_summary(
        &self,
        district: &str,
        hook: Hook,
    ) -> Result<Option<serde_json::Value>, RegistryError> {
        let Some(shadow) = self.shadow(district, hook) else {
            return Ok(None);
        };
        Ok(Some(shadow.summary(self.stored_stats(&shadow)?)))
    }

    fn stored_stats(&self, shadow: &Shadow) -> Result<ShadowStats, RegistryError> {
        let key = shadow.key();
        Ok(self
            .store
            .record_get(SHADOW_STATS, &key)?
            .map(|b| parse(&key, &b))
            .transpose()?
            .unwrap_or_default())
    }

    /// Adds what this host counted of each shadow candidate to the store's statistics
    /// (the follower does it every half second, `civic serve` once more as it stops). A
    /// count the store did not take stays to be added next time.
    pub fn flush_shadows(&self) -> Result<(), RegistryError> {
        let shadows: Vec<Arc<Shadow>> = self.shadows.read().values().cloned().collect();
        for shadow in shadows {
            let delta = std::mem::take(&mut *shadow.unflushed.lock());
            if delta.is_empty() {
                continue;
            }
            let key = shadow.key();
            let added = update_record(&*self.store, SHADOW_STATS, &key, |cur| {
                let mut s: ShadowStats =
                    cur.map(|b| parse(&key, b)).transpose()?.unwrap_or_default();
                s.add(delta.clone());
                Ok((Some(json(&s)), ()))
            });
            if let Err(e) = added {
                // Put back before what was counted meanwhile, in order.
                let mut local = shadow.unflushed.lock();
                let mut back = delta;
                back.add(std::mem::take(&mut *local));
                *local = back;
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// The slot's shadow candidate, if any.
    pub fn shadow(&self, district: &str, hook: Hook) -> Option<Arc<Shadow>> {
        self.shadows
            .read()
            .get(&(district.to_owned(), hook))
            .cloned()
    }

    fn update_slot(
        &self,
        district: &str,
        hook: Hook,
        f: impl Fn(&mut SlotRecord),
    ) -> Result<SlotRecord, RegistryError> {
        let slot = update_record(&*self.store, SLOTS, &slot_key(district, hook), |cur| {
            let mut s: SlotRecord = cur
                .map(|b| parse("slot", b))
                .transpose()?
                .unwrap_or_default();
            f(&mut s);
            Ok((Some(json(&s)), s))
        })?;
        crate::generation::bump(&*self.store, crate::generation::Cached::Registry)?;
        Ok(slot)
    }

    /// The city default for a hook.
    pub fn city_default(&self, hook: Hook) -> Option<Arc<Active>> {
        self.active.read().get(&(CITY.to_owned(), hook)).cloned()
    }

    /// Counts a success or a failure of an active version. A version is suspended — the
    /// previous one (or the city default) takes over — after the configured number of
    /// failures in a row, or when at least [`SUSPEND_RATE_PERCENT`] % of its last
    /// [`RATE_WINDOW`] decisions failed. Failures the host caused (overload) are not counted
    /// by callers. Returns `true` if it was suspended.
    pub fn record_outcome(&self, active: &Arc<Active>, ok: bool, now: Millis) -> bool {
        let Some(why) = active.outcomes.lock().record(ok, self.suspend_after) else {
            return false;
        };
        let (district, hook, version) = (
            active.record.district.clone(),
            active.record.hook,
            active.record.version.clone(),
        );
        let next = update_record(&*self.store, SLOTS, &slot_key(&district, hook), |cur| {
            let mut s: SlotRecord = cur
                .map(|b| parse("slot", b))
                .transpose()?
                .unwrap_or_default();
            if s.active.as_deref() != Some(version.as_str()) {
                return Ok((cur.map(<[u8]>::to_vec), None));
            }
            s.active = s.previous.pop();
            s.suspended.push(version.clone());
            let detail = format!(
                "{why}; now active: {}",
                s.active.as_deref().unwrap_or("the city default")
            );
            s.history.push(SlotEvent::new(
                now,
                "system",
                "suspended",
                version.clone(),
                detail,
            ));
            Ok((Some(json(&s)), Some(s.active.clone())))
        });
        let Ok(Some(next)) = next else { return false };
        if let Err(e) = crate::generation::bump(&*self.store, crate::generation::Cached::Registry) {
            // The suspension is stored; other hosts see it at their next start or change.
            tracing::error!(error = %e, "could not tell other hosts of a suspension");
        }
        let mut map = self.active.write();
        let key = (district.clone(), hook);
        if map.get(&key).is_some_and(|a| Arc::ptr_eq(a, active)) {
            map.remove(&key);
        }
        drop(map);
        if let Some(next) = next {
            match self.load(&district, hook, &next) {
                Ok(a) => drop(self.active.write().insert(key, a)),
                Err(e) => {
                    tracing::error!(%district, error = %crate::text::escape_for_log(&e.to_string()), "could not load the version restored after a suspension")
                }
            }
        }
        tracing::warn!(%district, hook = hook.as_str(), %version, why = %why, "plug-in version suspended");
        true
    }
}
