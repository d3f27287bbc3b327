//! What intake reads and checks: a new case as a channel submits it, checked against the
//! directory, and the caller's keyed hash. Taking it in (rules, routing, the write) is the
//! service's (`service::flow`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::directory::{Directory, UnitKind};
use crate::model::{Case, CaseKind, Channel, Dispute, Location, Millis, Urgency};
use crate::runtime::wit;

/// Longest description accepted.
pub const MAX_DESCRIPTION: usize = 4000;
/// Longest chamber-of-commerce name of a dispute party.
pub const MAX_CHAMBER: usize = 100;
/// How far back the caller's history reaches.
pub const RECENT_WINDOW_MS: i64 = 30 * 86_400_000;
/// The caller's most recent cases given to rules (enough for the repeat rules).
pub const MAX_RECENT: usize = 20;
/// The case that makes a repeat: the third from one caller and category in the window.
pub const REPEAT_THRESHOLD: usize = 3;

/// The caller, as given at intake. Only a keyed hash of the phone number is kept.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Caller {
    /// Phone number (hashed immediately, never stored).
    #[serde(default)]
    pub phone: Option<String>,
}

/// A new case as an intake channel submits it. Fields only the platform may set (status,
/// handler, ...) are not here, so a body carrying them is refused.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    /// The district (`jiyang`, ...).
    pub district: String,
    /// Service code.
    pub category: String,
    /// Kind; defaults to the category's.
    #[serde(default)]
    pub kind: Option<CaseKind>,
    /// Channel; defaults to `phone`.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Emergency time limits.
    #[serde(default)]
    pub urgent: bool,
    /// Where.
    #[serde(default)]
    pub location: Location,
    /// Who called.
    #[serde(default)]
    pub caller: Caller,
    /// Flags (`litigation`, `fire`, `repeat-no-new-facts`, ...).
    #[serde(default)]
    pub flags: Vec<String>,
    /// Dispute details.
    #[serde(default)]
    pub dispute: Option<Dispute>,
    /// What the citizen said.
    #[serde(default)]
    pub description: String,
}

/// Why a new case was refused (the API's 422).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(m: impl Into<String>) -> Invalid {
    Invalid(m.into())
}

fn kind_of(s: &str) -> Option<CaseKind> {
    serde_json::from_value(serde_json::Value::String(s.into())).ok()
}

/// Checks a new case against the directory and builds the received case.
pub fn validate(
    dir: &Directory,
    new: &NewCase,
    id: String,
    caller_key: String,
    created_by: &str,
    now: Millis,
) -> Result<Case, Invalid> {
    if !dir.is_district(&new.district) {
        return Err(invalid(format!(
            "`{}` is not a district; known: {}",
            new.district,
            dir.districts().join(", ")
        )));
    }
    let category = dir.category(&new.category).ok_or_else(|| {
        invalid(format!(
            "`{}` is not a service code of the category list",
            new.category
        ))
    })?;
    let mut location = new.location.clone();
    if let Some(g) = &location.grid {
        let unit = dir
            .unit(g)
            .filter(|u| u.kind == UnitKind::Grid)
            .ok_or_else(|| invalid(format!("`{g}` is not a grid")))?;
        if dir.district_of(g) != Some(new.district.as_str()) {
            return Err(invalid(format!(
                "grid `{g}` is not in district {}",
                new.district
            )));
        }
        match &location.community {
            Some(c) if unit.parent.as_deref() != Some(c.as_str()) => {
                return Err(invalid(format!("grid `{g}` is not in community `{c}`")));
            }
            None => location.community = unit.parent.clone(),
            _ => {}
        }
    }
    if let Some(c) = &location.community {
        let ok = dir
            .unit(c)
            .is_some_and(|u| matches!(u.kind, UnitKind::Community | UnitKind::Village));
        if !ok || dir.district_of(c) != Some(new.district.as_str()) {
            return Err(invalid(format!(
                "`{c}` is not a community or village of district {}",
                new.district
            )));
        }
    }
    for (v, lo, hi, name) in [
        (location.lat, -90.0, 90.0, "lat"),
        (location.lon, -180.0, 180.0, "lon"),
    ] {
        if v.is_some_and(|v| !(lo..=hi).contains(&v) || !v.is_finite()) {
            return Err(invalid(format!("{name} is out of range")));
        }
    }
    if let Some(a) = &location.address {
        crate::text::check("the address", a, 500).map_err(|e| invalid(e.to_string()))?;
    }
    crate::text::check("the description", &new.description, MAX_DESCRIPTION)
        .map_err(|e| invalid(e.to_string()))?;
    let mut flags = wit::CaseFlags::empty();
    for f in &new.flags {
        if f == "repeat" {
            return Err(invalid(
                "the `repeat` flag is set by the platform, not at intake",
            ));
        }
        flags |= wit::CaseFlags::from_name(f).ok_or_else(|| {
            invalid(format!(
                "unknown flag `{f}`; known: {}",
                wit::CaseFlags::all_names().collect::<Vec<_>>().join(", ")
            ))
        })?;
    }
    if let Some(d) = &new.dispute {
        if d.dispute_type.is_empty() || d.dispute_type.len() > 32 || d.chambers.len() > 8 {
            return Err(invalid(
                "dispute: the type must be 1-32 bytes and at most 8 parties given",
            ));
        }
        crate::text::check("the dispute type", &d.dispute_type, 32)
            .map_err(|e| invalid(e.to_string()))?;
        for chamber in d.chambers.iter().flatten() {
            crate::text::check("a party's chamber", chamber, MAX_CHAMBER)
                .map_err(|e| invalid(e.to_string()))?;
        }
    }
    let kind = match new.kind {
        Some(k) => k,
        None => kind_of(&category.default_kind).unwrap_or(CaseKind::Help),
    };
    let mut c = Case::received(
        id,
        new.district.clone(),
        new.category.clone(),
        created_by.to_owned(),
        now,
    );
    c.kind = kind;
    c.channel = new.channel.unwrap_or(Channel::Phone);
    c.urgency = if new.urgent {
        Urgency::Urgent
    } else {
        Urgency::Normal
    };
    c.location = location;
    c.caller_key = caller_key;
    c.flags = flags;
    c.dispute = new.dispute.clone();
    c.description = new.description.clone();
    Ok(c)
}

/// A keyed hash of a phone number: the same caller gets the same key, and the number
/// cannot be read back from it.
pub fn caller_key(secret: &[u8], phone: Option<&str>, fallback: &str) -> String {
    let digits: String = phone
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let mut h = Sha256::new();
    h.update(secret);
    h.update([0]);
    h.update(if digits.is_empty() {
        fallback.as_bytes()
    } else {
        digits.as_bytes()
    });
    format!("k{}", &hex::encode(h.finalize())[..31])
}
