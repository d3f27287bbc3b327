//! Checks on what goes into and comes out of a plug-in.
//!
//! The host never acts on a decision it has not checked: every unit id must exist in the
//! directory version the decision was made against and belong to the case's district or
//! the city; lists and strings are bounded; reason codes are short machine-readable codes.

use wasmtime::Engine;
use wasmtime::component::Component;

use super::{CONTRACT_VERSION, PluginFailure, wit};
use crate::directory::{Directory, UnitKind};

/// At most this many reason codes per decision.
pub const MAX_REASONS: usize = 16;
/// Longest reason code.
pub const MAX_REASON_LEN: usize = 64;
/// At most this many co-handlers.
pub const MAX_CO_HANDLERS: usize = 8;
/// At most this many escalation actions.
pub const MAX_ACTIONS: usize = 16;
/// Longest free text (a public notice).
pub const MAX_TEXT_LEN: usize = 1000;
/// The most bytes a plug-in may hand the host in one decision: the largest valid decision
/// (16 actions of 1000-byte notices, 16 reason codes of 64 bytes, 8 co-handlers of 200-byte
/// ids and the rest) with room to spare. Enforced as wasmtime's hostcall fuel, while the
/// guest's output is copied, not after.
pub const MAX_DECISION_BYTES: usize = 64 << 10;
/// Longest span in minutes (90 days).
pub const MAX_SPAN_MINUTES: u32 = 90 * 24 * 60;
/// Longest span in working days.
pub const MAX_SPAN_WORKING_DAYS: u32 = 120;

/// A component starts with the component-model preamble; a core module or random bytes
/// get a clear message before anything is compiled.
pub(crate) fn check_component_bytes(bytes: &[u8]) -> Result<(), PluginFailure> {
    const MAGIC: &[u8; 4] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(PluginFailure::invalid_component(
            "the bytes are not WebAssembly (no \\0asm header)",
        ));
    }
    // Layout field: 0x0001 for core modules, 0x0001 after a 0x000d version for components.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(PluginFailure::invalid_component(
            "this is a core Wasm module, not a component: build it with `civic plugin build` (or componentize it with wasm-tools)",
        ));
    }
    Ok(())
}

/// Reads a component's own imports (not those of the core modules inside it, which the
/// component satisfies itself) without compiling it, and refuses anything but the
/// contract's interfaces of the version this host speaks: a component that needs WASI, or
/// was built against another contract, is told so in a moment instead of after a compile
/// that can take most of a minute.
pub(crate) fn check_imports(bytes: &[u8]) -> Result<(), PluginFailure> {
    use wasmparser::{Parser, Payload};
    let mut depth = 0usize;
    let mut foreign = Vec::new();
    let mut versions = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| {
            PluginFailure::invalid_component(format!("the component cannot be read: {e}"))
        })?;
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| {
                        PluginFailure::invalid_component(format!("an import cannot be read: {e}"))
                    })?;
                    let name = import.name.name;
                    match name
                        .strip_prefix("civic:rules/")
                        .and_then(|r| r.split_once('@'))
                    {
                        Some((_, v)) if v == CONTRACT_VERSION => {}
                        Some((_, v)) => versions.push(v.to_owned()),
                        None => foreign.push(name.to_owned()),
                    }
                }
            }
            _ => {}
        }
    }
    if !foreign.is_empty() {
        let shown: Vec<&str> = foreign.iter().take(8).map(String::as_str).collect();
        return Err(PluginFailure::invalid_component(format!(
            "it imports {} (and {} more); a plug-in may import only civic:rules@{CONTRACT_VERSION} interfaces, and this host provides no WASI: build it with stub WASI (componentize-py --stub-wasi, jco --disable all) or without the dependency that needs it",
            shown.join(", "),
            foreign.len() - shown.len(),
        )));
    }
    if let Some(v) = versions.first() {
        return Err(PluginFailure::IncompatibleContract {
            expected: CONTRACT_VERSION.into(),
            detail: format!(
                "it was built against civic:rules@{v}; this host supports civic:rules@{CONTRACT_VERSION}"
            ),
        });
    }
    Ok(())
}

/// The most linear memory any core module inside the component starts with, in bytes.
/// A Rust plug-in starts with one 64 KiB page; an interpreter built with componentize-py or
/// StarlingMonkey starts with its whole pre-initialised heap.
pub(crate) fn initial_memory_bytes(bytes: &[u8]) -> Result<u64, PluginFailure> {
    use wasmparser::{Parser, Payload, TypeRef};
    const PAGE: u64 = 64 << 10;
    let mut most = 0u64;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| {
            PluginFailure::invalid_component(format!("the component cannot be read: {e}"))
        })?;
        let mut see = |ty: wasmparser::MemoryType| {
            let page = ty.page_size_log2.map_or(PAGE, |l| 1u64 << l);
            most = most.max(ty.initial.saturating_mul(page));
        };
        match payload {
            Payload::MemorySection(reader) => {
                for ty in reader {
                    see(ty.map_err(|e| {
                        PluginFailure::invalid_component(format!("a memory cannot be read: {e}"))
                    })?);
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| {
                        PluginFailure::invalid_component(format!("an import cannot be read: {e}"))
                    })?;
                    if let TypeRef::Memory(ty) = import.ty {
                        see(ty);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(most)
}

/// Refuses, before compiling, a component that could never be instantiated under its
/// memory cap, with the cap it needs — instead of failing every decision later.
pub(crate) fn check_initial_memory(bytes: &[u8], cap: u64) -> Result<(), PluginFailure> {
    let initial = initial_memory_bytes(bytes)?;
    if initial > cap {
        return Err(PluginFailure::invalid_component(format!(
            "it starts with {initial} bytes of linear memory, more than its memory cap of {cap} bytes: deploy it with a memory cap of at least {} bytes, or name no memory cap and the host sizes one from the component",
            initial.next_multiple_of(1 << 20) + super::INTERPRETER_MEMORY_HEADROOM
        )));
    }
    Ok(())
}

/// Explains why a component does not fit the contract, naming the version it was built for.
pub(crate) fn incompatible(
    component: &Component,
    engine: &Engine,
    e: wasmtime::Error,
) -> PluginFailure {
    let ty = component.component_type();
    let names: Vec<String> = ty
        .imports(engine)
        .map(|(n, _)| n.to_owned())
        .chain(ty.exports(engine).map(|(n, _)| n.to_owned()))
        .collect();
    let found: Vec<&str> = names
        .iter()
        .filter_map(|n| {
            n.strip_prefix("civic:rules/")
                .and_then(|r| r.split_once('@'))
                .map(|(_, v)| v)
        })
        .collect();
    let detail = match found.first() {
        Some(v) if *v != CONTRACT_VERSION => {
            format!("it was built against civic:rules@{v} ({e:#})")
        }
        Some(_) => format!("{e:#}"),
        None => {
            format!("it does not use the civic:rules contract at all; it has {names:?} ({e:#})")
        }
    };
    PluginFailure::IncompatibleContract {
        expected: CONTRACT_VERSION.into(),
        detail,
    }
}

pub(crate) fn case_kind(s: &str) -> Option<wit::CaseKind> {
    use wit::CaseKind as K;
    Some(match s {
        "consultation" => K::Consultation,
        "help" => K::Help,
        "complaint" => K::Complaint,
        "report" => K::Report,
        "suggestion" => K::Suggestion,
        "praise" => K::Praise,
        _ => return None,
    })
}

pub(crate) fn describe_rule_error(e: &wit::RuleError) -> String {
    let (kind, msg) = match e {
        wit::RuleError::InvalidInput(m) => ("invalid input", m),
        wit::RuleError::MissingReference(m) => ("missing reference", m),
        wit::RuleError::InvalidConfig(m) => ("invalid config", m),
        wit::RuleError::Internal(m) => ("internal", m),
    };
    format!("{kind}: {}", super::host::cut(msg, MAX_TEXT_LEN))
}

fn reasons(list: &[String]) -> Result<(), String> {
    if list.len() > MAX_REASONS {
        return Err(format!(
            "{} reason codes, at most {MAX_REASONS} allowed",
            list.len()
        ));
    }
    for r in list {
        let ok = !r.is_empty()
            && r.len() <= MAX_REASON_LEN
            && r.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            });
        if !ok {
            let shown = super::host::cut(r, 80);
            return Err(format!(
                "reason code {shown:?} is not 1-{MAX_REASON_LEN} characters of a-z, 0-9, '.', '-', '_'"
            ));
        }
    }
    Ok(())
}

fn unit<'a>(id: &'a str, dir: &Directory, district: &str, role: &str) -> Result<&'a str, String> {
    if id.len() > 200 {
        return Err(format!("{role} unit id is {} bytes long", id.len()));
    }
    match dir.district_of(id) {
        _ if dir.unit(id).is_none() => Err(format!(
            "{role} unit `{id}` does not exist in directory version {}",
            dir.version()
        )),
        Some(d) if d != district => Err(format!(
            "{role} unit `{id}` belongs to district {d}, not to the case's district {district}"
        )),
        _ => Ok(id),
    }
}

fn span(s: &Option<wit::Span>, what: &str) -> Result<(), String> {
    match s {
        Some(wit::Span::Minutes(m)) if *m > MAX_SPAN_MINUTES => {
            Err(format!("{what} of {m} minutes is over {MAX_SPAN_MINUTES}"))
        }
        Some(wit::Span::WorkingDays(d)) if *d > MAX_SPAN_WORKING_DAYS => Err(format!(
            "{what} of {d} working days is over {MAX_SPAN_WORKING_DAYS}"
        )),
        _ => Ok(()),
    }
}

pub(crate) fn eligibility(
    d: &wit::EligibilityDecision,
    dir: &Directory,
    district: &str,
) -> Result<(), String> {
    reasons(&d.reasons)?;
    if let wit::Admissibility::Rejected(r) = &d.admissibility
        && r.related_case.as_ref().is_some_and(|c| c.len() > 64)
    {
        return Err("related case id is longer than 64 bytes".into());
    }
    if let Some(m) = &d.mediation {
        unit(&m.unit, dir, district, "mediation")?;
        let kind = dir.unit(&m.unit).map(|u| u.kind);
        let is_mediation = matches!(
            kind,
            Some(
                UnitKind::MediationCommittee
                    | UnitKind::IndustryMediation
                    | UnitKind::ChamberMediation
                    | UnitKind::PreLitigationCentre
            )
        );
        if !is_mediation {
            return Err(format!(
                "mediation unit `{}` is not a mediation body",
                m.unit
            ));
        }
    }
    Ok(())
}

pub(crate) fn routing(
    r: &wit::RoutingDecision,
    dir: &Directory,
    district: &str,
) -> Result<(), String> {
    reasons(&r.reasons)?;
    unit(&r.lead, dir, district, "lead")?;
    if r.co_handlers.len() > MAX_CO_HANDLERS {
        return Err(format!(
            "{} co-handlers, at most {MAX_CO_HANDLERS} allowed",
            r.co_handlers.len()
        ));
    }
    for (i, c) in r.co_handlers.iter().enumerate() {
        unit(c, dir, district, "co-handler")?;
        if *c == r.lead || r.co_handlers[..i].contains(c) {
            return Err(format!(
                "co-handler `{c}` is listed twice or is also the lead"
            ));
        }
    }
    span(&r.deadlines.sign_off, "sign-off deadline")?;
    span(&r.deadlines.first_contact, "first-contact deadline")?;
    span(&r.deadlines.resolution, "resolution deadline")?;
    if let Some(p) = r.deadlines.warning_percent
        && (p == 0 || p > 100)
    {
        return Err(format!(
            "warning at {p}% of the resolution deadline is not within 1-100"
        ));
    }
    Ok(())
}

pub(crate) fn escalation(
    e: &wit::EscalationDecision,
    dir: &Directory,
    district: &str,
) -> Result<(), String> {
    reasons(&e.reasons)?;
    if e.actions.len() > MAX_ACTIONS {
        return Err(format!(
            "{} actions, at most {MAX_ACTIONS} allowed",
            e.actions.len()
        ));
    }
    for a in &e.actions {
        match a {
            wit::Action::Remind(u) => drop(unit(u, dir, district, "reminded")?),
            wit::Action::Supervise(u) => drop(unit(u, dir, district, "supervising")?),
            wit::Action::MoveTo(u) => drop(unit(u, dir, district, "move-to")?),
            wit::Action::PublicNotice(t) if t.len() > MAX_TEXT_LEN => {
                return Err(format!(
                    "public notice is {} bytes, at most {MAX_TEXT_LEN}",
                    t.len()
                ));
            }
            wit::Action::PublicNotice(_) => {}
            wit::Action::Flag(f) => {
                reasons(std::slice::from_ref(f)).map_err(|m| format!("flag: {m}"))?
            }
            wit::Action::SetDeadline(c) if c.due_at <= 0 => {
                return Err(format!("new deadline {} is not a valid time", c.due_at));
            }
            wit::Action::SetDeadline(_) => {}
        }
    }
    Ok(())
}
