//! The service: store, runtime, registry, calendar and clock wired together, and the case
//! operations the API and the CLI call.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::calendar::Calendar;
use crate::clock::{Clock, SystemClock};
use crate::deadlines;
use crate::directory::{Directory, SAMPLE_CATEGORIES, SAMPLE_DIRECTORY};
use crate::lifecycle::{self, Action, LifecycleError};
use crate::metrics::Metrics;
use crate::model::{Case, CaseStatus, EventBody, Millis};
use crate::registry::{CITY, Registry, RegistryError};
use crate::runtime::{
    Decision, Evaluation, Hook, Input, Limits, Plugin, PluginError, Runtime, RuntimeConfig,
    RuntimeError, wit,
};

mod flow;
use crate::store::{CaseStore, Change, StoreConfig, StoreError};
use directories::Directories;

mod directories;
pub use flow::Taken;

/// Why a case operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is not valid (a 422 for the API).
    #[error("{0}")]
    Invalid(String),
    /// No such case (or not visible).
    #[error("case {0} does not exist")]
    NotFound(String),
    /// The lifecycle refused the action.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A new case was refused.
    #[error(transparent)]
    Intake(#[from] crate::intake::Invalid),
    /// The service is not set up (no directory loaded).
    #[error("{0}")]
    Unavailable(String),
    /// The same kind of work is already running; retry when it is done (a 429).
    #[error("{0}")]
    Busy(String),
}

/// Reads an operator's calendar file.
fn load_calendar(path: &Path) -> Result<Calendar, ServiceError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ServiceError::Unavailable(format!("cannot read the calendar {}: {e}", path.display()))
    })?;
    Calendar::from_json(&text).map_err(|e| {
        ServiceError::Unavailable(format!(
            "the calendar {} is not valid: {e} (data/calendar.json in the source shows the format)",
            path.display()
        ))
    })
}

/// How to start the service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Data directory: holds `plugin-cache/`, `admin-token` and (by default) `store/`.
    pub data_dir: PathBuf,
    /// Where cases are kept: `sled:DATA/store` unless configured.
    pub store: StoreConfig,
    /// Runtime maxima.
    pub runtime: RuntimeConfig,
    /// Failures in a row before a plug-in version is suspended.
    pub suspend_after: u32,
    /// What each district may store of plug-in versions.
    pub upload_quota: crate::registry::Quota,
    /// A working-time calendar file (the format of `data/calendar.json`) in place of the
    /// bundled one, for an operator to add a year or correct a holiday without a rebuild.
    pub calendar_file: Option<PathBuf>,
    /// This host's name among several on one store (`--node`); generated when unset.
    pub node: Option<String>,
}

/// Checks a host name given with `--node`: what logs, `/healthz` and metric labels carry.
pub fn check_node(name: &str) -> Result<(), ServiceError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "--node {:?}: give 1 to 64 letters, digits, '.', '_' or '-'",
            crate::text::escape_for_log(name)
        )))
    }
}

/// A name for a host started without `--node`: the machine's name and four random hex
/// digits, so two hosts on one machine differ.
fn generated_node() -> String {
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(40)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let mut r = [0u8; 2];
    getrandom::fill(&mut r).expect("the operating system provides randomness");
    format!("{machine}-{:02x}{:02x}", r[0], r[1])
}

impl ServiceConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            runtime: RuntimeConfig {
                cache_dir: Some(data_dir.join("plugin-cache")),
                ..RuntimeConfig::default()
            },
            store: StoreConfig::Sled(crate::store::sled::SledConfig::new(data_dir.join("store"))),
            data_dir,
            suspend_after: crate::registry::DEFAULT_SUSPEND_AFTER,
            upload_quota: Default::default(),
            calendar_file: None,
            node: None,
        }
    }

    /// The sled engine's settings, when the store is sled (benchmarks tune them).
    pub fn sled_mut(&mut self) -> Option<&mut crate::store::sled::SledConfig> {
        match &mut self.store {
            StoreConfig::Sled(c) => Some(c),
            StoreConfig::Postgres(_) => None,
        }
    }
}

/// The running service.
pub struct Service {
    /// Cases and records.
    store: Arc<dyn CaseStore>,
    /// Parsed directory versions (the store keeps them as given).
    directories: Directories,
    /// Plug-in runtime.
    runtime: Arc<Runtime>,
    /// Plug-in versions.
    registry: Registry,
    /// Working-time calendar.
    calendar: Calendar,
    /// Time.
    clock: Arc<dyn Clock>,
    /// Metrics.
    metrics: Metrics,
    /// Token cache.
    tokens: crate::auth::Tokens,
    /// When set, rules run natively instead of in Wasm (a baseline for benchmarks).
    native: Option<Arc<dyn NativeRules>>,
    caller_secret: Vec<u8>,
    heartbeat: crate::health::Heartbeat,
    /// This host's name.
    node: String,
    /// What this host has caught up with of other hosts' changes.
    generations: crate::generation::Generations,
}

/// What `/healthz` says of the case store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreHealth {
    /// The engine (`sled`, `postgres`).
    pub engine: &'static str,
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// Why it is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StoreHealth {
    /// When the check itself could not run.
    pub fn unknown() -> Self {
        Self {
            engine: "unknown",
            status: "unavailable",
            error: Some("the store check could not run".into()),
        }
    }
}

/// Rules compiled into the host instead of run as plug-ins: the baseline the Wasm runtime
/// is measured against. Never used by `civic serve`.
pub trait NativeRules: Send + Sync {
    /// The eligibility hook.
    fn eligibility(&self, input: &Input<'_>) -> Option<wit::EligibilityDecision>;
    /// The routing hook.
    fn routing(&self, input: &Input<'_>) -> Option<wit::RoutingDecision>;
}

/// What first start set up.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    /// The admin token, when one was created (shown once).
    pub admin_token: Option<String>,
    /// Bundled plug-ins deployed.
    pub deployed: Vec<String>,
}

pub use crate::actions::CaseAction;

const SECRETS: &str = "secrets";

/// Who claimed the store's first set-up, and whether it is done.
const SETUP: &str = "setup";

/// How long a host waits for another to finish setting the store up.
const SETUP_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl Service {
    /// Cases and records.
    pub fn store(&self) -> &Arc<dyn CaseStore> {
        &self.store
    }

    /// The plug-in runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Plug-in versions and which is active where.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The working-time calendar deadlines are counted in.
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    /// The service's time source.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Counters and histograms.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The token cache.
    pub fn tokens(&self) -> &crate::auth::Tokens {
        &self.tokens
    }

    /// This host's name among the hosts sharing the store.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Catches up with what other hosts on the same store changed of what this one keeps
    /// in memory (active plug-ins, tokens); returns what moved. The follower of `civic serve` calls
    /// it every half second.
    pub fn follow_store(&self) -> Result<Vec<crate::generation::Cached>, ServiceError> {
        use crate::generation::Cached;
        // This host's shadow evaluations are added to the store's counts.
        if let Err(e) = self.registry.flush_shadows() {
            tracing::warn!(error = %e, "could not add shadow statistics to the store; trying again");
        }
        let moved = self.generations.moved(&*self.store)?;
        for what in &moved {
            match what {
                Cached::Registry => match self.registry.refresh() {
                    Ok(changed) => tracing::info!(
                        changed,
                        "plug-in slots read again after a change on another host"
                    ),
                    Err(e) => {
                        // Not caught up: the next call reads them again.
                        self.generations.forget(*what);
                        return Err(e.into());
                    }
                },
                Cached::Tokens => self.tokens.forget_all(),
            }
        }
        Ok(moved)
    }

    /// Runs rules natively instead of in Wasm: the baseline benchmarks compare against.
    pub fn set_native(&mut self, native: Arc<dyn NativeRules>) {
        self.native = Some(native);
    }

    /// Opens the store under `config.data_dir` and loads every active plug-in.
    pub fn open(config: &ServiceConfig, clock: Arc<dyn Clock>) -> Result<Self, ServiceError> {
        // Read first: a bad calendar file refuses to start before anything is created.
        let calendar = match &config.calendar_file {
            None => Calendar::bundled(),
            Some(path) => load_calendar(path)?,
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            ServiceError::Unavailable(format!(
                "cannot create the data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        // Cases hold what citizens said and where they live: the store is the service's
        // alone (sled creates its files readable by everyone otherwise).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| {
                    ServiceError::Unavailable(format!(
                        "cannot make the data directory {} private to this user: {e}",
                        config.data_dir.display()
                    ))
                })?;
        }
        let store = config.store.open()?;
        let runtime = Arc::new(
            Runtime::new(config.runtime.clone())
                .map_err(|e: RuntimeError| ServiceError::Unavailable(e.to_string()))?,
        );
        let registry = Registry::open(
            store.clone(),
            runtime.clone(),
            config.suspend_after,
            config.upload_quota,
        )?;
        let caller_secret = match store.record_get(SECRETS, "caller-key")? {
            Some(s) => s,
            None => {
                let mut s = vec![0u8; 32];
                getrandom::fill(&mut s).expect("the operating system provides randomness");
                store.record_put(SECRETS, &[("caller-key".into(), s.clone())])?;
                s
            }
        };
        let node = match &config.node {
            Some(n) => {
                check_node(n)?;
                n.clone()
            }
            None => generated_node(),
        };
        let generations = crate::generation::Generations::default();
        // What the registry just read is current: only later changes need reading again.
        generations.moved(&*store)?;
        for year in calendar.unchecked_years() {
            tracing::warn!(
                year,
                "the holiday calendar for this year is not marked as checked against the official notice"
            );
        }
        Ok(Self {
            store,
            directories: Directories::default(),
            runtime,
            registry,
            calendar,
            clock,
            metrics: Metrics::for_node(&node),
            tokens: Default::default(),
            native: None,
            caller_secret,
            heartbeat: Default::default(),
            node,
            generations,
        })
    }

    /// Opens with the system clock.
    pub fn open_default(config: &ServiceConfig) -> Result<Self, ServiceError> {
        Self::open(config, Arc::new(SystemClock))
    }

    /// On an empty store: loads the sample city, deploys and activates the bundled
    /// plug-ins, and creates an admin token (returned once; also written to
    /// `admin-token` in the data directory, readable by its owner only).
    pub fn bootstrap(&self, data_dir: &Path) -> Result<Bootstrap, ServiceError> {
        // Several hosts started at once on an empty database would each set it up (two
        // admin tokens, every plug-in deployed twice): the first to claim the set-up does
        // it, the others wait until it is done and then find nothing left to do.
        let claimed = crate::store::update_record(&*self.store, SETUP, "claimed-by", |cur| {
            Ok(match cur {
                None => (Some(self.node.as_bytes().to_vec()), true),
                Some(by) => (Some(by.to_vec()), by == self.node.as_bytes()),
            })
        })?;
        if !claimed {
            let started = std::time::Instant::now();
            while self.store.record_get(SETUP, "done")?.is_none() {
                // A host that died setting up leaves the claim: after a while the set-up
                // is done here instead (each step checks what is already there).
                if started.elapsed() > SETUP_WAIT {
                    tracing::warn!(
                        "the host that claimed the store's set-up did not finish it; setting up here"
                    );
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        let out = self.set_up(data_dir)?;
        self.store
            .record_put(SETUP, &[("done".into(), self.node.as_bytes().to_vec())])?;
        Ok(out)
    }

    fn set_up(&self, data_dir: &Path) -> Result<Bootstrap, ServiceError> {
        let mut out = Bootstrap::default();
        let now = self.clock.now();
        if self.store.current_directory_version()?.is_none() {
            self.directories
                .put(&*self.store, SAMPLE_DIRECTORY, SAMPLE_CATEGORIES)?;
        }
        for b in civic_plugin_bundle::all() {
            let scope = b.district.unwrap_or(CITY);
            for hook in Hook::ALL {
                if self.registry.slot(scope, hook)?.active.is_some()
                    || !self.registry.list(scope, hook)?.0.is_empty()
                {
                    continue;
                }
                let (rec, _) = self.registry.deploy(
                    scope,
                    hook,
                    b.package,
                    b.component,
                    Limits::for_component(b.component),
                    "{}",
                    "system",
                    now,
                )?;
                self.registry
                    .activate(scope, hook, &rec.version, "system", now)?;
                out.deployed.push(format!("{scope}/{}", hook.as_str()));
            }
        }
        let has_tokens =
            crate::auth::any(&*self.store).map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        if !has_tokens {
            let new = crate::auth::NewToken {
                name: "first admin".into(),
                role: crate::auth::Role::CityAdmin,
                district: None,
                unit: None,
                expires_in_days: None,
            };
            let (_, secret) = crate::auth::issue(&*self.store, None, &new, now)
                .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
            write_owner_only(&data_dir.join("admin-token"), &secret).map_err(|e| {
                ServiceError::Unavailable(format!("cannot write the admin token file: {e}"))
            })?;
            out.admin_token = Some(secret);
        }
        Ok(out)
    }

    /// The current directory version.
    pub fn directory(&self) -> Result<Arc<Directory>, ServiceError> {
        self.directories.current(&*self.store)?.ok_or_else(|| {
            ServiceError::Unavailable(
                "no directory is loaded; start with `civic serve` once to load the sample city"
                    .into(),
            )
        })
    }

    /// Evaluates `plugin` on `input` (natively instead, for a benchmark's baseline).
    pub fn evaluate(
        &self,
        plugin: &Plugin,
        input: &Input<'_>,
    ) -> Result<Evaluation<Decision>, PluginError> {
        match (&self.native, input.hook) {
            (Some(n), Hook::Eligibility) => Ok(native_eval(|| {
                n.eligibility(input).map(Decision::Eligibility)
            })),
            (Some(n), Hook::Routing) => Ok(native_eval(|| n.routing(input).map(Decision::Routing))),
            _ => self.runtime.evaluate(plugin, input),
        }
    }

    /// Takes a case in: validation, eligibility, routing, one durable write.
    pub fn intake(&self, new: &crate::intake::NewCase, actor: &str) -> Result<Taken, ServiceError> {
        flow::take_in(self, new, actor)
    }

    /// A stored directory version (decisions record the version they were made with).
    pub fn directory_version(&self, version: u64) -> Result<Arc<Directory>, ServiceError> {
        Ok(self.directories.version(&*self.store, version)?)
    }

    /// Stores a new directory version and makes it current.
    pub fn put_directory(
        &self,
        directory_json: &str,
        categories_json: &str,
    ) -> Result<Arc<Directory>, ServiceError> {
        Ok(self
            .directories
            .put(&*self.store, directory_json, categories_json)?)
    }

    /// When the background sweeper last completed a sweep.
    pub fn sweep_heartbeat(&self) -> &crate::health::Heartbeat {
        &self.heartbeat
    }

    pub(crate) fn caller_secret(&self) -> &[u8] {
        &self.caller_secret
    }

    /// A case.
    pub fn case(&self, id: &str) -> Result<Case, ServiceError> {
        self.store
            .get_case(id)?
            .ok_or_else(|| ServiceError::NotFound(id.to_owned()))
    }

    /// A case by id, or none.
    pub fn find_case(&self, id: &str) -> Result<Option<Case>, ServiceError> {
        Ok(self.store.get_case(id)?)
    }

    /// A case's history: the events its stored version counts, oldest first.
    pub fn history(&self, case: &Case) -> Result<Vec<crate::model::Event>, ServiceError> {
        Ok(self.store.history_of(&case.id, case.event_count)?)
    }

    /// One page of cases matching `filter`, newest first, after `cursor`.
    pub fn list_cases(
        &self,
        filter: &crate::store::Filter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<crate::store::Page, ServiceError> {
        Ok(self.store.list(filter, cursor, limit)?)
    }

    /// Open and closed cases per district and status (for `/metrics`).
    pub fn status_counts(
        &self,
    ) -> Result<std::collections::HashMap<(String, CaseStatus), u64>, ServiceError> {
        Ok(self.store.status_counts()?)
    }

    /// Whether the case store answers now.
    pub fn store_health(&self) -> StoreHealth {
        let error = self.store.ping().err().map(|e| e.to_string());
        StoreHealth {
            engine: self.store.engine(),
            status: if error.is_some() { "unavailable" } else { "ok" },
            error,
        }
    }

    /// Whether the service can take cases (a directory is loaded).
    pub fn is_ready(&self) -> bool {
        self.directories
            .current(&*self.store)
            .is_ok_and(|d| d.is_some())
    }

    /// Who a bearer token is, now.
    pub fn authenticate(
        &self,
        bearer: &str,
    ) -> Result<crate::auth::Principal, crate::auth::AuthError> {
        self.tokens
            .authenticate(&*self.store, bearer, self.clock.now())
    }

    /// Issues a token on `issuer`'s authority; returns it and its secret (shown once).
    pub fn issue_token(
        &self,
        issuer: &crate::auth::Principal,
        new: &crate::auth::NewToken,
    ) -> Result<(crate::auth::Token, String), crate::auth::AuthError> {
        crate::auth::issue(&*self.store, Some(issuer), new, self.clock.now())
    }

    /// The names and roles of the tokens among `ids` (a history's actors).
    pub fn actors<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<std::collections::BTreeMap<String, crate::auth::Actor>, crate::auth::AuthError>
    {
        crate::auth::actors(&*self.store, ids)
    }

    /// The tokens `p` may see.
    pub fn list_tokens(
        &self,
        p: &crate::auth::Principal,
    ) -> Result<Vec<crate::auth::Token>, crate::auth::AuthError> {
        crate::auth::list(&*self.store, p)
    }

    /// Revokes token `id` on `p`'s authority; false when there is no such token.
    pub fn revoke_token(
        &self,
        p: &crate::auth::Principal,
        id: &str,
    ) -> Result<bool, crate::auth::AuthError> {
        self.tokens.revoke(&*self.store, p, id)
    }

    /// Applies a lifecycle action by `actor`. With `expected_version`, a case that changed
    /// since is a conflict; without, the action is retried on a fresh read.
    pub fn act(
        &self,
        id: &str,
        action: &CaseAction,
        actor: &str,
        expected_version: Option<u64>,
    ) -> Result<Case, ServiceError> {
        for attempt in 0.. {
            let current = self.case(id)?;
            if let Some(v) = expected_version
                && v != current.version
            {
                return Err(StoreError::Conflict {
                    case: id.into(),
                    expected: v,
                    actual: current.version,
                }
                .into());
            }
            let change = self.plan(&current, action, actor)?;
            match self
                .store
                .update_case(id, Some(current.version), &|_| Ok(change.clone()))
            {
                Err(StoreError::Conflict { .. }) if expected_version.is_none() && attempt < 5 => {
                    continue;
                }
                other => return Ok(other?),
            }
        }
        unreachable!("the loop returns")
    }

    /// Computes the change an action makes, including re-routing after a return or reopen.
    fn plan(&self, case: &Case, action: &CaseAction, actor: &str) -> Result<Change, ServiceError> {
        let now = self.clock.now();
        let handler = || case.handler.clone().unwrap_or_default();
        let lc = match action {
            CaseAction::Sign => Action::Sign { unit: handler() },
            CaseAction::Start => Action::Start,
            CaseAction::Reply(t) => Action::Reply { text: t.clone() },
            CaseAction::Return(r) => Action::Return {
                unit: handler(),
                reason: r.clone(),
            },
            CaseAction::RequestExtension(d, r) => Action::RequestExtension {
                days: *d,
                reason: r.clone(),
            },
            CaseAction::ApproveExtension => {
                let days = case.extension.as_ref().map(|e| e.days).unwrap_or(0);
                let base = case.deadlines.resolution.unwrap_or(now);
                let resolution = self.calendar.add_working_days(base - 1, days);
                let (_, timers) = deadlines::resolution_timers(&self.calendar, resolution, None);
                Action::ApproveExtension { resolution, timers }
            }
            CaseAction::RefuseExtension(r) => Action::RefuseExtension { reason: r.clone() },
            CaseAction::Callback {
                satisfied,
                resolved,
                note,
            } => Action::Callback {
                satisfied: *satisfied,
                resolved: *resolved,
                note: note.clone(),
            },
            CaseAction::Close => Action::Close,
            CaseAction::Reopen(r) => Action::Reopen { reason: r.clone() },
            CaseAction::Pause(r) => Action::Pause { reason: r.clone() },
            CaseAction::Resume => {
                let paused_at = case.paused_at.unwrap_or(now);
                let shift = |t: Millis| self.calendar.extend_by_pause(t, paused_at, now);
                let timers = case
                    .paused_timers
                    .iter()
                    .map(|t| crate::model::PendingTimer {
                        kind: t.kind,
                        due_at: shift(t.due_at),
                    })
                    .collect();
                let d = &case.deadlines;
                let deadlines = crate::model::Deadlines {
                    sign_off: d.sign_off.map(shift),
                    first_contact: d.first_contact.map(shift),
                    resolution: d.resolution.map(shift),
                    warning: d.warning.map(shift),
                };
                Action::Resume { timers, deadlines }
            }
            CaseAction::Merge(into) => {
                let target = self
                    .store
                    .get_case(into)?
                    .ok_or_else(|| ServiceError::Invalid(format!("case {into} does not exist")))?;
                if target.district != case.district {
                    return Err(ServiceError::Invalid(format!("case {into} does not exist")));
                }
                if !target.is_open() {
                    return Err(ServiceError::Invalid(format!(
                        "case {into} is {}; merge into an open case",
                        target.status
                    )));
                }
                Action::Merge { into: into.clone() }
            }
        };
        let mut next = lifecycle::apply(case, &lc, now)?;
        let mut events: Vec<(Millis, String, EventBody)> = vec![(
            now,
            actor.to_owned(),
            EventBody::Transition {
                action: lc,
                from: case.status,
                to: next.status,
            },
        )];
        if next.status == CaseStatus::PendingDispatch {
            let dir = self.directory()?;
            let recent = flow::recent_cases(self, &next.caller_key, &next.district, &next.id, now)?;
            flow::route(self, &dir, &mut next, &recent, now, &mut events)?;
        }
        Ok(Change { case: next, events })
    }
}

fn native_eval<T>(f: impl FnOnce() -> Option<T>) -> Evaluation<T> {
    let started = std::time::Instant::now();
    let output = f();
    Evaluation {
        output,
        fuel_used: 0,
        duration: started.elapsed(),
        log: Default::default(),
    }
}

fn write_owner_only(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    writeln!(f, "{secret}")
}
