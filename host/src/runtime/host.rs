//! The generated bindings and the host side of the contract's imports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

use crate::directory::{Directory, UnitKind as DirUnitKind};

#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit/since_v0.1.0",
        world: "plugin",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}
pub(crate) use bindings::{Plugin, PluginPre, civic};

/// The contract's types, as the host sees them.
pub mod wit {
    pub use super::civic::rules::log::Level;
    pub use super::civic::rules::types::*;
}

/// Bounds on what one decision may log.
pub const MAX_LOG_LINES: usize = 32;
/// Bounds on the bytes one decision may log.
pub const MAX_LOG_BYTES: usize = 4096;
/// Longest log line kept; longer lines are cut.
pub const MAX_LOG_LINE: usize = 512;

/// One kept log line.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// Severity.
    pub level: String,
    /// The text, cut to `MAX_LOG_LINE` bytes.
    pub message: String,
}

/// The log of one decision: kept lines and how many were dropped.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecisionLog {
    /// Kept lines, in order.
    pub lines: Vec<LogLine>,
    /// Lines dropped because a bound was reached.
    pub dropped: u64,
    bytes: usize,
}

impl DecisionLog {
    fn push(&mut self, level: &str, message: &str) {
        let message = cut(message, MAX_LOG_LINE);
        if self.lines.len() >= MAX_LOG_LINES || self.bytes + message.len() > MAX_LOG_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += message.len();
        self.lines.push(LogLine {
            level: level.to_owned(),
            message: message.to_owned(),
        });
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Refuses memory growth past the plug-in's cap, and remembers that it did, so a trap
/// that follows (Rust aborts when allocation fails) is reported as a memory-limit error.
pub(crate) struct Limiter {
    pub max_memory: usize,
    pub hit: bool,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 10_000)
    }
}

/// Per-decision state: the directory snapshot and district scope, the limiter, the log and
/// the deadline.
pub(crate) struct HostState {
    pub directory: Arc<Directory>,
    pub district: Arc<str>,
    pub limiter: Limiter,
    pub log: DecisionLog,
    pub panic: Option<String>,
    pub deadline: Deadline,
}

/// A decision's time limit, counted in CPU time of the thread that runs it, with a
/// wall-clock backstop. A plug-in is stopped for being slow only when it has had its limit
/// of CPU; a decision stopped by the backstop first was starved by the host (every core
/// busy), which is reported as such and never counted against the plug-in.
pub(crate) struct Deadline {
    limit: Duration,
    backstop: Duration,
    cpu_start: Duration,
    wall_start: Instant,
    /// Set when the backstop stopped it: CPU time had and wall time taken.
    pub starved: Option<(Duration, Duration)>,
}

impl Deadline {
    /// Starts counting now, on the calling thread (the one that will run the guest).
    pub fn start(limit: Duration, backstop: Duration) -> Self {
        Self {
            limit,
            backstop,
            cpu_start: thread_cpu_time(),
            wall_start: Instant::now(),
            starved: None,
        }
    }

    /// Epoch ticks that cover `d` (at least one).
    pub fn ticks(d: Duration, tick: Duration) -> u64 {
        (d.as_micros().div_ceil(tick.as_micros().max(1)) as u64).max(1)
    }

    /// CPU time the thread has had since the start.
    pub fn cpu_used(&self) -> Duration {
        thread_cpu_time().saturating_sub(self.cpu_start)
    }

    /// Called at each epoch deadline: stop if the CPU limit is used up or the backstop has
    /// passed, else wait for as many ticks as CPU time is left.
    pub fn check(&mut self, tick: Duration) -> UpdateDeadline {
        let cpu = thread_cpu_time().saturating_sub(self.cpu_start);
        if cpu >= self.limit {
            return UpdateDeadline::Interrupt;
        }
        let wall = self.wall_start.elapsed();
        if wall >= self.backstop {
            self.starved = Some((cpu, wall));
            return UpdateDeadline::Interrupt;
        }
        let left = (self.limit - cpu).min(self.backstop - wall);
        UpdateDeadline::Continue(Self::ticks(left, tick))
    }
}

/// CPU time the calling thread has used.
#[cfg(unix)]
pub(crate) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux and the
    // BSDs define. It cannot fail for the calling thread.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Without a per-thread CPU clock, wall-clock time stands in (the backstop never fires
/// first).
#[cfg(not(unix))]
pub(crate) fn thread_cpu_time() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

fn to_wit_kind(k: DirUnitKind) -> wit::UnitKind {
    use wit::UnitKind as W;
    match k {
        DirUnitKind::CityCentre => W::CityCentre,
        DirUnitKind::DistrictDesk => W::DistrictDesk,
        DirUnitKind::Community => W::Community,
        DirUnitKind::Village => W::Village,
        DirUnitKind::Grid => W::Grid,
        DirUnitKind::Department => W::Department,
        DirUnitKind::Police => W::Police,
        DirUnitKind::MediationCommittee => W::MediationCommittee,
        DirUnitKind::IndustryMediation => W::IndustryMediation,
        DirUnitKind::ChamberMediation => W::ChamberMediation,
        DirUnitKind::PreLitigationCentre => W::PreLitigationCentre,
        DirUnitKind::PortStation => W::PortStation,
    }
}

pub(crate) fn from_wit_kind(k: wit::UnitKind) -> DirUnitKind {
    use wit::UnitKind as W;
    match k {
        W::CityCentre => DirUnitKind::CityCentre,
        W::DistrictDesk => DirUnitKind::DistrictDesk,
        W::Community => DirUnitKind::Community,
        W::Village => DirUnitKind::Village,
        W::Grid => DirUnitKind::Grid,
        W::Department => DirUnitKind::Department,
        W::Police => DirUnitKind::Police,
        W::MediationCommittee => DirUnitKind::MediationCommittee,
        W::IndustryMediation => DirUnitKind::IndustryMediation,
        W::ChamberMediation => DirUnitKind::ChamberMediation,
        W::PreLitigationCentre => DirUnitKind::PreLitigationCentre,
        W::PortStation => DirUnitKind::PortStation,
    }
}

fn to_wit_unit(u: &crate::directory::Unit) -> wit::Unit {
    wit::Unit {
        id: u.id.clone(),
        name: u.name.clone(),
        kind: to_wit_kind(u.kind),
        parent: u.parent.clone(),
        function: u.function.clone(),
        level: u.level.clone(),
        dispute: u.dispute.clone(),
        chamber: u.chamber.clone(),
    }
}

impl civic::rules::types::Host for HostState {}

impl civic::rules::directory::Host for HostState {
    fn lookup(&mut self, id: String) -> Option<wit::Unit> {
        if !self.directory.visible(&id, &self.district) {
            return None;
        }
        self.directory.unit(&id).map(|u| to_wit_unit(u))
    }

    fn children(&mut self, parent: String, kind: Option<wit::UnitKind>) -> Vec<wit::Unit> {
        if !self.directory.visible(&parent, &self.district) {
            return Vec::new();
        }
        self.directory
            .children(&parent, kind.map(from_wit_kind), &self.district)
            .map(|u| to_wit_unit(u))
            .collect()
    }

    fn path(&mut self, id: String) -> Vec<String> {
        self.directory.path(&id, &self.district)
    }
}

impl civic::rules::log::Host for HostState {
    fn log(&mut self, level: wit::Level, message: String) {
        let level = match level {
            wit::Level::Debug => "debug",
            wit::Level::Info => "info",
            wit::Level::Warn => "warn",
            wit::Level::Error => "error",
        };
        self.log.push(level, &message);
    }

    fn report_panic(&mut self, message: String) {
        if self.panic.is_none() {
            self.panic = Some(cut(&message, 1024).to_owned());
        }
    }
}

/// Flags travel as a list of their contract names, e.g. `["litigation", "repeat"]`.
const FLAG_NAMES: [(wit::CaseFlags, &str); 11] = [
    (wit::CaseFlags::LITIGATION, "litigation"),
    (wit::CaseFlags::ARBITRATION, "arbitration"),
    (wit::CaseFlags::RECONSIDERATION, "reconsideration"),
    (wit::CaseFlags::PETITION, "petition"),
    (wit::CaseFlags::FIRE, "fire"),
    (wit::CaseFlags::CRIME_IN_PROGRESS, "crime-in-progress"),
    (wit::CaseFlags::MEDICAL_EMERGENCY, "medical-emergency"),
    (wit::CaseFlags::TRAFFIC_INJURY, "traffic-injury"),
    (wit::CaseFlags::CRIMINAL, "criminal"),
    (wit::CaseFlags::REPEAT_NO_NEW_FACTS, "repeat-no-new-facts"),
    (wit::CaseFlags::REPEAT, "repeat"),
];

impl wit::CaseFlags {
    /// The flag named `name` in the contract.
    pub fn from_name(name: &str) -> Option<Self> {
        FLAG_NAMES.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }

    /// Names of the set flags.
    pub fn names(&self) -> Vec<&'static str> {
        FLAG_NAMES
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
            .collect()
    }

    /// Every flag name the contract defines.
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        FLAG_NAMES.iter().map(|(_, n)| *n)
    }
}

impl serde::Serialize for wit::CaseFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

impl<'de> serde::Deserialize<'de> for wit::CaseFlags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = <Vec<String> as serde::Deserialize>::deserialize(d)?;
        names.iter().try_fold(wit::CaseFlags::empty(), |acc, n| {
            wit::CaseFlags::from_name(n)
                .map(|f| acc | f)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown flag `{n}`; known flags: {}",
                        FLAG_NAMES.map(|(_, n)| n).join(", ")
                    ))
                })
        })
    }
}
