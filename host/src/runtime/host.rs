//! The generated bindings and the host side of the contract's imports.

use std::sync::Arc;

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

/// Per-decision state: the directory snapshot and district scope, the limiter and the log.
pub(crate) struct HostState {
    pub directory: Arc<Directory>,
    pub district: Arc<str>,
    pub limiter: Limiter,
    pub log: DecisionLog,
    pub panic: Option<String>,
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
