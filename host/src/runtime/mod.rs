//! The plug-in runtime: the only code that touches wasmtime.
//!
//! One [`Engine`] per process. A plug-in is validated and compiled once when it is loaded
//! (or read back from the compiled cache), pre-linked against the contract's imports, and
//! then every decision runs in a fresh [`Store`] with a fuel budget, an epoch deadline, a
//! memory cap and a bounded log — no state survives from one case to the next, and a
//! trapped instance is simply dropped. Outputs are validated before anyone acts on them.
//!
//! Plug-ins import only the read-only directory and the log: no WASI, so there is no
//! filesystem, network, clock, randomness, environment or arguments to take away.

mod cache;
pub mod error;
mod host;
mod validate;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use crate::directory::Directory;
pub use error::{PluginError, PluginFailure, PluginRef, RuntimeError};
use host::{Deadline, HostState, Limiter, PluginPre};
pub use host::{DecisionLog, LogLine, MAX_LOG_BYTES, MAX_LOG_LINES, wit};

/// The contract version this host speaks.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// Largest component a host accepts by default. A Python plug-in built with
/// componentize-py carries the interpreter and its standard library (about 18 MB for a
/// small rule); a JavaScript one built with StarlingMonkey about 13 MB.
pub const MAX_COMPONENT_BYTES: usize = 48 << 20;

/// Fuel a plug-in gets by default when it carries an interpreter (see
/// [`Limits::for_component`]): measured, a small Python rule takes ~300k on its first call and a
/// SpiderMonkey JS one 1.4–7M, against 3.5–8.3k for the same rule compiled from Rust.
pub const INTERPRETER_FUEL: u64 = 100_000_000;

/// Room a plug-in gets above the linear memory it starts with, when it starts with more
/// than the default memory cap allows (an interpreter's pre-initialised heap).
pub const INTERPRETER_MEMORY_HEADROOM: u64 = 8 << 20;

/// The three hooks of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    /// Admissibility, grid admission, mediation.
    Eligibility,
    /// Lead unit, co-handlers, deadlines.
    Routing,
    /// Actions when a timer fires.
    Escalation,
}

impl Hook {
    /// Every hook.
    pub const ALL: [Hook; 3] = [Hook::Eligibility, Hook::Routing, Hook::Escalation];

    /// The hook's name in the contract and in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Eligibility => "eligibility",
            Hook::Routing => "routing",
            Hook::Escalation => "escalation",
        }
    }
}

impl std::str::FromStr for Hook {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "eligibility" => Ok(Hook::Eligibility),
            "routing" => Ok(Hook::Routing),
            "escalation" => Ok(Hook::Escalation),
            other => Err(format!(
                "unknown hook `{other}`: expected eligibility, routing or escalation"
            )),
        }
    }
}

/// Host-wide maxima and settings. Per-plug-in [`Limits`] are capped by these.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Largest fuel budget any plug-in may have.
    pub max_fuel: u64,
    /// Longest wall-clock deadline any plug-in may have.
    pub max_timeout: Duration,
    /// Largest linear memory any plug-in may have (also the pooling slot size).
    pub max_memory_bytes: u64,
    /// Decisions that may run at the same time (pooling allocator slots).
    pub max_concurrent: u32,
    /// Largest component accepted.
    pub max_component_bytes: usize,
    /// Longest a compilation may take before the load is refused.
    pub compile_timeout: Duration,
    /// Granularity of the deadline checks.
    pub epoch_tick: Duration,
    /// How much wall-clock time a decision may take beyond its CPU-time limit before the
    /// host stops it as overloaded. A decision's limit is CPU time on its own thread, so a
    /// descheduled thread is not blamed on the plug-in; this backstop still bounds how long
    /// a starved decision can hold its caller.
    pub overload_backstop: Duration,
    /// Where compiled plug-ins are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Most bytes the compiled cache may hold; the least recently used entries go first.
    pub cache_max_bytes: u64,
    /// Decisions of one district that may run at once. A district's hostile or slow
    /// plug-in then takes at most this many threads; the other districts keep the rest of
    /// the machine. The default is half the cores (at least one).
    pub district_share: u32,
    /// Plug-in limits a district admin may set at most (a city admin may go up to the
    /// host-wide maxima above).
    pub district_max: Limits,
    /// A plug-in whose decisions take more CPU than this on average runs its decisions at
    /// a low OS priority (nice 10): it still runs at full speed on an idle machine, but
    /// under contention a spinning or slow rule yields to everyone else's decisions and
    /// requests. Well-behaved rules take microseconds and never get there.
    pub slow_decision: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_fuel: 2_000_000_000,
            max_timeout: Duration::from_secs(2),
            max_memory_bytes: 64 << 20,
            max_concurrent: 128,
            max_component_bytes: MAX_COMPONENT_BYTES,
            // A Python component compiles in ~10 s on an idle 2-core machine; this bounds a
            // pathological one, not a large one on a busy host.
            compile_timeout: Duration::from_secs(180),
            epoch_tick: Duration::from_millis(2),
            overload_backstop: Duration::from_secs(2),
            cache_dir: None,
            cache_max_bytes: 2 << 30,
            district_share: std::thread::available_parallelism()
                .map_or(1, |n| (n.get() / 2).max(1) as u32),
            district_max: Limits {
                fuel: 200_000_000,
                timeout: Duration::from_millis(500),
                memory_bytes: 64 << 20,
            },
            slow_decision: Duration::from_millis(5),
        }
    }
}

/// One plug-in's limits for one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Fuel budget (roughly, wasm instructions).
    pub fuel: u64,
    /// Time limit: CPU time of the deciding thread (see [`RuntimeConfig::overload_backstop`]
    /// for the wall-clock bound).
    #[serde(with = "millis")]
    pub timeout: Duration,
    /// Linear-memory cap in bytes.
    pub memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 10_000_000,
            timeout: Duration::from_millis(100),
            memory_bytes: 4 << 20,
        }
    }
}

impl Limits {
    /// The limits a component gets when its deployer names none. A plug-in compiled from
    /// Rust starts with one page of memory and keeps the tight defaults. One that starts
    /// with more memory than the default cap — a Python or JavaScript plug-in, whose
    /// interpreter arrives with its heap already initialised — gets what it starts with
    /// plus [`INTERPRETER_MEMORY_HEADROOM`], and [`INTERPRETER_FUEL`]: its decisions run
    /// through an interpreter and cost a hundred times the fuel. Bytes that cannot be read
    /// get the defaults (loading them will say what is wrong).
    pub fn for_component(bytes: &[u8]) -> Self {
        let d = Self::default();
        let initial = validate::initial_memory_bytes(bytes).unwrap_or(0);
        if initial <= d.memory_bytes / 2 {
            return d;
        }
        Self {
            fuel: INTERPRETER_FUEL,
            memory_bytes: initial.next_multiple_of(1 << 20) + INTERPRETER_MEMORY_HEADROOM,
            ..d
        }
    }

    /// These limits with whichever of the three the deployer named instead.
    pub fn overridden(
        self,
        fuel: Option<u64>,
        timeout_ms: Option<u64>,
        memory_bytes: Option<u64>,
    ) -> Self {
        Self {
            fuel: fuel.unwrap_or(self.fuel),
            timeout: timeout_ms.map_or(self.timeout, Duration::from_millis),
            memory_bytes: memory_bytes.unwrap_or(self.memory_bytes),
        }
    }
}

mod millis {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_millis)
    }
}

/// A compiled, pre-linked plug-in, ready to evaluate. Cheap to share.
pub struct Plugin {
    id: PluginRef,
    pre: PluginPre<HostState>,
    limits: Limits,
    config: String,
    /// Moving average of the CPU time its decisions take, in nanoseconds.
    cpu_average_ns: AtomicU64,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.id)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Plugin {
    /// Name and version.
    pub fn id(&self) -> &PluginRef {
        &self.id
    }
    /// Its limits (already capped by the host).
    pub fn limits(&self) -> Limits {
        self.limits
    }
    /// Its configuration string.
    pub fn config(&self) -> &str {
        &self.config
    }
}

/// What a decision is computed from, besides the plug-in.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The hook asked.
    pub hook: Hook,
    /// The case.
    pub case: &'a wit::Case,
    /// Evaluation time (ms since the epoch).
    pub now: i64,
    /// The caller's recent cases.
    pub recent_cases: &'a [wit::RecentCase],
    /// The directory version to decide against.
    pub directory: &'a Arc<Directory>,
    /// For escalation: the timer that fired.
    pub timer: Option<wit::Timer>,
}

/// A decision of any hook; serialised as that hook's decision itself, so a record reads
/// the same whichever hook made it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Decision {
    /// Admissibility, grid admission, mediation.
    Eligibility(wit::EligibilityDecision),
    /// Lead unit, co-handlers, deadlines.
    Routing(wit::RoutingDecision),
    /// What to do about a fired timer.
    Escalation(wit::EscalationDecision),
}

impl Decision {
    /// Its reason codes.
    pub fn reasons(&self) -> &[String] {
        match self {
            Decision::Eligibility(d) => &d.reasons,
            Decision::Routing(d) => &d.reasons,
            Decision::Escalation(d) => &d.reasons,
        }
    }

    /// The eligibility decision, if it is one.
    pub fn into_eligibility(self) -> Option<wit::EligibilityDecision> {
        match self {
            Decision::Eligibility(d) => Some(d),
            _ => None,
        }
    }

    /// The routing decision, if it is one.
    pub fn into_routing(self) -> Option<wit::RoutingDecision> {
        match self {
            Decision::Routing(d) => Some(d),
            _ => None,
        }
    }

    /// The escalation decision, if it is one.
    pub fn into_escalation(self) -> Option<wit::EscalationDecision> {
        match self {
            Decision::Escalation(d) => Some(d),
            _ => None,
        }
    }
}

/// A successful evaluation: the output and what it cost.
#[derive(Debug, Clone)]
pub struct Evaluation<T> {
    /// The decision, or `None` for "no opinion".
    pub output: Option<T>,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Wall-clock time, including instantiation.
    pub duration: Duration,
    /// What the plug-in logged.
    pub log: DecisionLog,
}

impl<T> Evaluation<T> {
    /// The same evaluation with its output turned into a `U`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Evaluation<U> {
        Evaluation {
            output: self.output.map(f),
            fuel_used: self.fuel_used,
            duration: self.duration,
            log: self.log,
        }
    }
}

/// Advances the engine's epoch so wall-clock deadlines fire; stops when dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// The plug-in runtime. Create one per process and share it.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    config: RuntimeConfig,
    cache: Option<cache::Cache>,
    slots: Slots,
    shares: Shares,
    /// Held by the compile that runs (see [`Runtime::compile`]).
    compiling: Arc<parking_lot::Mutex<()>>,
    _ticker: Ticker,
}

/// Bounds decisions in flight to the pooling allocator's slots: a burst waits for a slot
/// instead of failing to instantiate (which would look like a plug-in failure).
struct Slots {
    free: parking_lot::Mutex<u32>,
    freed: parking_lot::Condvar,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    fn take(&self) -> Slot<'_> {
        let mut free = self.free.lock();
        while *free == 0 {
            self.freed.wait(&mut free);
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock() += 1;
        self.0.freed.notify_one();
    }
}

/// Each district's share of the decisions in flight: at most `per_district` of one
/// district's decisions run at once, so one district's failing or slow plug-in slows that
/// district alone. A decision that cannot get its district's share within `wait` fails as
/// host-overloaded (never the plug-in's fault): the case goes to a person and the caller
/// is not held.
struct Shares {
    per_district: u32,
    wait: Duration,
    used: parking_lot::Mutex<std::collections::HashMap<String, u32>>,
    /// Waiters sleep on their district's stripe: a freed share wakes the waiters of that
    /// district (and the rare other district on the stripe), not every waiter of every
    /// district — 64 callers of a hostile district once woke on each of another district's
    /// thousands of decisions a second.
    freed: Vec<parking_lot::Condvar>,
}

struct Share<'a> {
    shares: &'a Shares,
    district: String,
}

impl Shares {
    fn new(per_district: u32, wait: Duration) -> Self {
        Self {
            per_district: per_district.max(1),
            wait,
            used: Default::default(),
            freed: (0..64).map(|_| parking_lot::Condvar::new()).collect(),
        }
    }

    fn stripe(&self, district: &str) -> &parking_lot::Condvar {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        district.hash(&mut h);
        &self.freed[h.finish() as usize % self.freed.len()]
    }

    fn take(&self, district: &str) -> Result<Share<'_>, Duration> {
        let started = Instant::now();
        let mut used = self.used.lock();
        loop {
            let n = used.get(district).copied().unwrap_or(0);
            if n < self.per_district {
                used.insert(district.to_owned(), n + 1);
                return Ok(Share {
                    shares: self,
                    district: district.to_owned(),
                });
            }
            let waited = started.elapsed();
            if waited >= self.wait {
                return Err(waited);
            }
            self.stripe(district)
                .wait_for(&mut used, self.wait - waited);
        }
    }

    fn in_flight(&self, district: &str) -> u32 {
        self.used.lock().get(district).copied().unwrap_or(0)
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        let mut used = self.shares.used.lock();
        if let Some(n) = used.get_mut(&self.district) {
            *n -= 1;
            if *n == 0 {
                used.remove(&self.district);
            }
        }
        drop(used);
        // A stripe may hold another district's waiters too: wake them all, they recheck.
        self.shares.stripe(&self.district).notify_all();
    }
}

impl Runtime {
    /// Sets up the engine, the pooling allocator, the linker and the deadline ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine_err = |e: wasmtime::Error| RuntimeError::Engine(format!("{e:#}"));
        let mut pool = PoolingAllocationConfig::default();
        let slots = config.max_concurrent;
        pool.total_component_instances(slots)
            // main module + shim + fixup instances, with room for guests built differently
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 4)
            .max_memories_per_component(2)
            .max_memory_size(config.max_memory_bytes as usize)
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(64 << 10);
        let mut c = Config::new();
        c.wasm_component_model(true)
            .concurrency_support(false)
            .consume_fuel(true)
            .epoch_interruption(true)
            .parallel_compilation(true)
            // Explicit bounds checks instead of signal handlers and guard regions: no
            // page faults or madvise on the per-decision path.
            .signals_based_traps(false)
            .memory_reservation(config.max_memory_bytes)
            .memory_guard_size(0)
            .memory_reservation_for_growth(0)
            .max_wasm_stack(512 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&c).map_err(engine_err)?;
        let mut linker = Linker::new(&engine);
        host::Plugin::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(engine_err)?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(cache::Cache::open(dir, &engine, config.cache_max_bytes)?),
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (engine, stop, tick) = (engine.clone(), stop.clone(), config.epoch_tick);
            std::thread::Builder::new()
                .name("civic-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| {
                    RuntimeError::Engine(format!("could not start the deadline ticker: {e}"))
                })?
        };
        Ok(Self {
            shares: Shares::new(config.district_share, config.overload_backstop),
            slots: Slots {
                free: parking_lot::Mutex::new(config.max_concurrent.max(1)),
                freed: parking_lot::Condvar::new(),
            },
            engine,
            linker,
            config,
            cache,
            compiling: Default::default(),
            _ticker: Ticker {
                stop,
                thread: Some(thread),
            },
        })
    }

    /// The host-wide settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Decisions of `district` running now (at most [`RuntimeConfig::district_share`]).
    pub fn in_flight(&self, district: &str) -> u32 {
        self.shares.in_flight(district)
    }

    /// `limits` capped by the host-wide maxima.
    pub fn cap(&self, limits: Limits) -> Limits {
        Limits {
            fuel: limits.fuel.min(self.config.max_fuel),
            timeout: limits.timeout.min(self.config.max_timeout),
            memory_bytes: limits.memory_bytes.min(self.config.max_memory_bytes),
        }
    }

    /// The version id of component bytes: their hex sha256.
    pub fn version_of(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Validates, compiles (or reads from the compiled cache) and pre-links a plug-in.
    #[tracing::instrument(skip(self, bytes, config), fields(bytes = bytes.len()))]
    pub fn load(
        &self,
        name: &str,
        bytes: &[u8],
        limits: Limits,
        config: &str,
    ) -> Result<Arc<Plugin>, PluginError> {
        let started = Instant::now();
        let id = PluginRef {
            name: name.to_owned(),
            version: Self::version_of(bytes),
        };
        let fail = |failure| PluginError {
            plugin: id.clone(),
            hook: None,
            failure,
            fuel_used: 0,
            duration: started.elapsed(),
        };
        if bytes.len() > self.config.max_component_bytes {
            return Err(fail(PluginFailure::invalid_component(format!(
                "{} bytes is over the {}-byte limit",
                bytes.len(),
                self.config.max_component_bytes
            ))));
        }
        validate::check_component_bytes(bytes).map_err(&fail)?;
        validate::check_imports(bytes).map_err(&fail)?;
        let limits = self.cap(limits);
        validate::check_initial_memory(bytes, limits.memory_bytes).map_err(&fail)?;
        let cached = self
            .cache
            .as_ref()
            .and_then(|c| c.get(&self.engine, &id.version));
        let compiled_now = cached.is_none();
        let component = match cached {
            Some(c) => c,
            None => self.compile(bytes).map_err(&fail)?,
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(PluginPre::new)
            .map_err(|e| fail(validate::incompatible(&component, &self.engine, e)))?;
        // Cached only once it links: a refused component leaves nothing on disk.
        if compiled_now
            && let Some(cache) = &self.cache
            && let Err(e) = cache.put(&id.version, &component)
        {
            tracing::warn!(plugin = %id, error = %e, "could not write the compiled-plug-in cache");
        }
        tracing::debug!(plugin = %id, elapsed_ms = started.elapsed().as_millis() as u64, "plug-in loaded");
        Ok(Arc::new(Plugin {
            id,
            pre,
            limits,
            config: config.to_owned(),
            cpu_average_ns: AtomicU64::new(0),
        }))
    }

    /// Compiles on a helper thread so a pathological component cannot hold the caller
    /// past the compile timeout (the thread finishes in the background and is discarded).
    /// One compile runs at a time — each already uses every core — and the timeout counts
    /// from when this one starts: two uploads at once, or a discarded compile still
    /// running, do not make a well-formed component time out. Waiting for the turn is
    /// bounded by the same timeout.
    fn compile(&self, bytes: &[u8]) -> Result<Component, PluginFailure> {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (tx, rx) = std::sync::mpsc::channel();
        let (engine, bytes, turn) = (self.engine.clone(), bytes.to_vec(), self.compiling.clone());
        std::thread::Builder::new()
            .name("civic-compile".into())
            .spawn(move || {
                let _turn = turn.lock();
                if started_tx.send(()).is_err() {
                    return; // the caller gave up waiting for its turn
                }
                let _ = tx.send(Component::new(&engine, &bytes));
            })
            .map_err(|e| {
                PluginFailure::invalid_component(format!("could not start compilation: {e}"))
            })?;
        let limit = self.config.compile_timeout;
        if started_rx.recv_timeout(limit).is_err() {
            return Err(PluginFailure::invalid_component(format!(
                "another component has been compiling for more than {} s; upload again later",
                limit.as_secs()
            )));
        }
        match rx.recv_timeout(limit) {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(PluginFailure::invalid_component(format!("{e:#}"))),
            Err(_) => Err(PluginFailure::invalid_component(format!(
                "compilation took longer than {} s",
                limit.as_secs()
            ))),
        }
    }

    /// Runs `input.hook`'s decision with `plugin`: the one way any caller — intake, the
    /// sweep, dry runs, replay, backtests, shadows — asks a plug-in anything.
    #[tracing::instrument(skip_all, fields(plugin = %plugin.id, district = %input.case.district, hook = input.hook.as_str()))]
    pub fn evaluate(
        &self,
        plugin: &Plugin,
        input: &Input<'_>,
    ) -> Result<Evaluation<Decision>, PluginError> {
        let hook = input.hook;
        match hook {
            Hook::Eligibility => self
                .run_hook(
                    plugin,
                    input,
                    |store, b, ctx| {
                        b.civic_rules_hooks()
                            .call_eligibility(store, input.case, ctx)
                    },
                    validate::eligibility,
                )
                .map(|e| e.map(Decision::Eligibility)),
            Hook::Routing => self
                .run_hook(
                    plugin,
                    input,
                    |store, b, ctx| b.civic_rules_hooks().call_routing(store, input.case, ctx),
                    validate::routing,
                )
                .map(|e| e.map(Decision::Routing)),
            Hook::Escalation => {
                let Some(timer) = input.timer else {
                    return Err(PluginError {
                        plugin: plugin.id.clone(),
                        hook: Some(hook),
                        failure: PluginFailure::invalid_decision(
                            "an escalation is decided for a timer, and none was given",
                        ),
                        fuel_used: 0,
                        duration: Duration::ZERO,
                    });
                };
                self.run_hook(
                    plugin,
                    input,
                    |store, b, ctx| {
                        b.civic_rules_hooks()
                            .call_escalation(store, input.case, timer, ctx)
                    },
                    validate::escalation,
                )
                .map(|e| e.map(Decision::Escalation))
            }
        }
    }

    /// The context a hook receives for `input`.
    fn context(plugin: &Plugin, input: &Input<'_>) -> wit::Context {
        let category = input
            .directory
            .category(&input.case.category)
            .map(|c| wit::CategoryInfo {
                code: c.code.clone(),
                name: c.name.clone(),
                default_kind: validate::case_kind(&c.default_kind).unwrap_or(wit::CaseKind::Help),
                grid_admissible: c.grid_admissible,
                dispute: c.dispute.clone(),
                lead_function: c.lead_function.clone(),
            });
        wit::Context {
            now: input.now,
            directory_version: input.directory.version(),
            category,
            recent_cases: input.recent_cases.to_vec(),
            config: plugin.config.clone(),
        }
    }

    fn run_hook<T: Send>(
        &self,
        plugin: &Plugin,
        input: &Input<'_>,
        call: impl FnOnce(
            &mut Store<HostState>,
            &host::Plugin,
            &wit::Context,
        ) -> wasmtime::Result<Result<Option<T>, wit::RuleError>>
        + Send,
        check: impl FnOnce(&T, &Directory, &str) -> Result<(), String>,
    ) -> Result<Evaluation<T>, PluginError> {
        let limits = plugin.limits;
        let hook = Some(input.hook);
        let _share = self
            .shares
            .take(&input.case.district)
            .map_err(|waited| PluginError {
                plugin: plugin.id.clone(),
                hook,
                failure: PluginFailure::HostOverloaded {
                    limit_ms: limits.timeout.as_millis() as u64,
                    cpu_ms: 0,
                    wall_ms: waited.as_millis() as u64,
                },
                fuel_used: 0,
                duration: waited,
            })?;
        let started = Instant::now();
        let _slot = self.slots.take();
        let ctx = Self::context(plugin, input);
        let slow = plugin.cpu_average_ns.load(Ordering::Relaxed)
            > self.config.slow_decision.as_nanos() as u64;
        let ran = if slow {
            // On a thread of its own at low priority, so that the OS runs everyone else
            // first when the machine is busy (a priority once lowered cannot be raised
            // again without privilege, so the thread lives for this decision only).
            std::thread::scope(|s| {
                let spawned = std::thread::Builder::new()
                    .name("civic-slow-decision".into())
                    .spawn_scoped(s, || {
                        lower_priority();
                        self.run(plugin, input, &ctx, call)
                    });
                match spawned {
                    Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not start a low-priority decision thread");
                        Ran::not_run(plugin, input)
                    }
                }
            })
        } else {
            self.run(plugin, input, &ctx, call)
        };
        let Ran {
            result,
            state,
            fuel_used,
            cpu,
        } = ran;
        let before = plugin.cpu_average_ns.load(Ordering::Relaxed);
        let sample = cpu.as_nanos() as u64;
        plugin.cpu_average_ns.store(
            if before == 0 {
                sample
            } else {
                before - before / 8 + sample / 8
            },
            Ordering::Relaxed,
        );
        let duration = started.elapsed();
        let fail = |failure| PluginError {
            plugin: plugin.id.clone(),
            hook,
            failure,
            fuel_used,
            duration,
        };
        let output = match result {
            Err(e) => return Err(fail(classify(e, &state, limits))),
            Ok(Err(rule)) => {
                return Err(fail(PluginFailure::RuleError {
                    detail: validate::describe_rule_error(&rule),
                }));
            }
            Ok(Ok(out)) => out,
        };
        if let Some(out) = &output {
            check(out, input.directory, &input.case.district)
                .map_err(|m| fail(PluginFailure::invalid_decision(m)))?;
        }
        Ok(Evaluation {
            output,
            fuel_used,
            duration,
            log: state.log,
        })
    }
}

/// What running a decision in its store gave.
struct Ran<T> {
    result: wasmtime::Result<Result<Option<T>, wit::RuleError>>,
    state: HostState,
    fuel_used: u64,
    cpu: Duration,
}

impl<T> Ran<T> {
    /// A decision that could not be started (no thread for it): the host's fault.
    fn not_run(plugin: &Plugin, input: &Input<'_>) -> Self {
        let mut deadline = Deadline::start(plugin.limits.timeout, Duration::ZERO);
        deadline.starved = Some((Duration::ZERO, Duration::ZERO));
        Ran {
            result: Err(wasmtime::Error::from(Trap::Interrupt)),
            state: HostState {
                directory: input.directory.clone(),
                district: Arc::from(input.case.district.as_str()),
                limiter: Limiter {
                    max_memory: 0,
                    hit: false,
                },
                log: DecisionLog::default(),
                panic: None,
                deadline,
            },
            fuel_used: 0,
            cpu: Duration::ZERO,
        }
    }
}

impl Runtime {
    /// Instantiates `plugin` in a fresh store with its limits and makes the call, on the
    /// calling thread (whose CPU time the limit counts).
    fn run<T>(
        &self,
        plugin: &Plugin,
        input: &Input<'_>,
        ctx: &wit::Context,
        call: impl FnOnce(
            &mut Store<HostState>,
            &host::Plugin,
            &wit::Context,
        ) -> wasmtime::Result<Result<Option<T>, wit::RuleError>>,
    ) -> Ran<T> {
        let limits = plugin.limits;
        let tick = self.config.epoch_tick;
        let mut store = Store::new(
            &self.engine,
            HostState {
                directory: input.directory.clone(),
                district: Arc::from(input.case.district.as_str()),
                limiter: Limiter {
                    max_memory: limits.memory_bytes as usize,
                    hit: false,
                },
                log: DecisionLog::default(),
                panic: None,
                deadline: Deadline::start(
                    limits.timeout,
                    limits.timeout + self.config.overload_backstop,
                ),
            },
        );
        store.limiter(|s| &mut s.limiter);
        // What can come back from the guest is bounded by the largest valid decision, so a
        // hostile one cannot make the host copy megabytes outside its fuel and deadline.
        store.set_hostcall_fuel(validate::MAX_DECISION_BYTES);
        // The epoch ticks in wall-clock time; at each deadline the callback compares the
        // CPU time the thread has had with the limit and extends by what is left, so a
        // thread the OS did not run is not a slow rule.
        store.set_epoch_deadline(Deadline::ticks(limits.timeout, tick));
        store.epoch_deadline_callback(move |mut ctx| Ok(ctx.data_mut().deadline.check(tick)));
        let result = store.set_fuel(limits.fuel).and_then(|()| {
            let bindings = plugin.pre.instantiate(&mut store)?;
            call(&mut store, &bindings, ctx)
        });
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.into_data();
        let cpu = state.deadline.cpu_used();
        Ran {
            result,
            state,
            fuel_used,
            cpu,
        }
    }
}

/// Lowers the calling thread's OS priority (nice 10), for a decision known to be slow.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread; failure leaves the priority as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// Turns a wasmtime error into what happened, in the plug-in author's terms.
fn classify(e: wasmtime::Error, state: &HostState, limits: Limits) -> PluginFailure {
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PluginFailure::OutOfFuel {
            budget: limits.fuel,
        },
        Some(Trap::Interrupt) => match state.deadline.starved {
            Some((cpu, wall)) => PluginFailure::HostOverloaded {
                limit_ms: limits.timeout.as_millis() as u64,
                cpu_ms: cpu.as_millis() as u64,
                wall_ms: wall.as_millis() as u64,
            },
            None => PluginFailure::Timeout {
                limit_ms: limits.timeout.as_millis() as u64,
            },
        },
        _ if is_hostcall_fuel(&e) => PluginFailure::invalid_decision(format!(
            "the decision is larger than the {} bytes a plug-in may return",
            validate::MAX_DECISION_BYTES
        )),
        _ if state.limiter.hit => PluginFailure::MemoryLimit {
            limit_bytes: limits.memory_bytes,
        },
        Some(trap) => PluginFailure::Trap {
            message: trap.to_string(),
            panic: state.panic.clone(),
        },
        None => PluginFailure::Trap {
            message: format!("{e:#}"),
            panic: state.panic.clone(),
        },
    }
}

/// Fuzzing: reads `json` as each hook's decision and checks it as the host checks a
/// plug-in's output for a case of `district`. Never panics on any input; returns how many
/// of the three readings were valid decisions.
pub fn fuzz_validate(dir: &Directory, district: &str, json: &[u8]) -> usize {
    let mut valid = 0;
    if let Ok(d) = serde_json::from_slice::<wit::EligibilityDecision>(json) {
        valid += usize::from(validate::eligibility(&d, dir, district).is_ok());
    }
    if let Ok(d) = serde_json::from_slice::<wit::RoutingDecision>(json) {
        valid += usize::from(validate::routing(&d, dir, district).is_ok());
    }
    if let Ok(d) = serde_json::from_slice::<wit::EscalationDecision>(json) {
        valid += usize::from(validate::escalation(&d, dir, district).is_ok());
    }
    valid
}

/// wasmtime's error when a guest hands the host more data than its hostcall fuel allows
/// (its type is private, so it is recognised by its message).
fn is_hostcall_fuel(e: &wasmtime::Error) -> bool {
    e.chain().any(|c| {
        c.to_string()
            .contains("fuel allocated for hostcalls has been exhausted")
    })
}
