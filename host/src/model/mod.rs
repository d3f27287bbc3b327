//! The case record, its events and decision records: plain serde types shared by the
//! store, the lifecycle, intake and the API.

use serde::{Deserialize, Serialize};

use crate::runtime::{PluginRef, wit};

mod action;
pub use action::Action;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

macro_rules! kebab_enum {
    ($(#[$m:meta])* $name:ident => $wit:path { $($(#[$vm:meta])* $v:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($(#[$vm])* $v),* }

        impl From<$name> for $wit {
            fn from(v: $name) -> Self {
                match v { $($name::$v => <$wit>::$v),* }
            }
        }

        impl From<$wit> for $name {
            fn from(v: $wit) -> Self {
                match v { $(<$wit>::$v => $name::$v),* }
            }
        }
    };
}

kebab_enum! {
    /// What the citizen asked for.
    CaseKind => wit::CaseKind {
        /// 咨询
        Consultation,
        /// 求助
        Help,
        /// 投诉
        Complaint,
        /// 举报
        Report,
        /// 建议
        Suggestion,
        /// 表扬
        Praise,
    }
}

kebab_enum! {
    /// How the case reached the hotline.
    Channel => wit::Channel {
        /// Phone call.
        Phone,
        /// The hotline app.
        App,
        /// WeChat mini-program.
        Wechat,
        /// Web form.
        Web,
        /// Reported by a grid worker.
        Grid,
        /// An Open311 client.
        Open311,
        /// Anything else.
        Other,
    }
}

kebab_enum! {
    /// Urgency classified at intake.
    Urgency => wit::Urgency {
        /// Normal time limits.
        Normal,
        /// Emergency time limits.
        Urgent,
    }
}

kebab_enum! {
    /// Lifecycle state of a case.
    CaseStatus => wit::CaseStatus {
        /// Taken in, before admissibility.
        Received,
        /// Not admitted (不予受理).
        Rejected,
        /// Handed to an emergency line.
        Transferred,
        /// Answered on the phone (一线办结).
        AnsweredAtIntake,
        /// Waiting for routing (also after a return or reopen).
        PendingDispatch,
        /// Sent to a unit, not yet signed for.
        Dispatched,
        /// Signed for (签收) by the unit.
        Signed,
        /// Being worked on.
        InProgress,
        /// The unit has replied.
        Replied,
        /// The citizen has been called back.
        Callback,
        /// Closed (办结).
        Closed,
        /// Merged into a duplicate.
        Merged,
    }
}

impl CaseStatus {
    /// Every status.
    pub const ALL: [CaseStatus; 12] = [
        Self::Received,
        Self::Rejected,
        Self::Transferred,
        Self::AnsweredAtIntake,
        Self::PendingDispatch,
        Self::Dispatched,
        Self::Signed,
        Self::InProgress,
        Self::Replied,
        Self::Callback,
        Self::Closed,
        Self::Merged,
    ];

    /// Terminal states: nothing more happens unless the case is reopened.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Rejected
                | Self::Transferred
                | Self::AnsweredAtIntake
                | Self::Closed
                | Self::Merged
        )
    }

    /// The status's name as in URLs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Rejected => "rejected",
            Self::Transferred => "transferred",
            Self::AnsweredAtIntake => "answered-at-intake",
            Self::PendingDispatch => "pending-dispatch",
            Self::Dispatched => "dispatched",
            Self::Signed => "signed",
            Self::InProgress => "in-progress",
            Self::Replied => "replied",
            Self::Callback => "callback",
            Self::Closed => "closed",
            Self::Merged => "merged",
        }
    }
}

impl std::str::FromStr for CaseStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status `{s}`"))
    }
}

/// Where the matter is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Community or village unit id.
    #[serde(default)]
    pub community: Option<String>,
    /// Grid unit id.
    #[serde(default)]
    pub grid: Option<String>,
    /// Latitude.
    #[serde(default)]
    pub lat: Option<f64>,
    /// Longitude.
    #[serde(default)]
    pub lon: Option<f64>,
    /// Free-text address.
    #[serde(default)]
    pub address: Option<String>,
}

/// A civil dispute's details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dispute {
    /// Dispute type (`labour`, `business`, ...).
    #[serde(rename = "type")]
    pub dispute_type: String,
    /// Amount in whole CNY.
    #[serde(default)]
    pub amount: Option<u64>,
    /// Each party's chamber-of-commerce membership.
    #[serde(default)]
    pub chambers: Vec<Option<String>>,
}

/// A mediation assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mediation {
    /// Track (`chamber`, `pre-litigation`, `community`, `industry`, `district`, `city`).
    pub track: String,
    /// The mediation body.
    pub unit: String,
}

/// What eligibility decided, kept on the case for routing and escalation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EligibilityOutcome {
    /// On the grid admission list.
    pub grid_admissible: bool,
    /// Mediation track, if any.
    pub mediation: Option<Mediation>,
}

/// The three deadlines of a dispatched case, plus the yellow-light warning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deadlines {
    /// Sign-off (签收) due.
    pub sign_off: Option<Millis>,
    /// First contact with the citizen due.
    pub first_contact: Option<Millis>,
    /// Resolution due.
    pub resolution: Option<Millis>,
    /// Yellow light from.
    pub warning: Option<Millis>,
}

/// A timer waiting to fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingTimer {
    /// Which deadline.
    pub kind: TimerKind,
    /// When it fires.
    pub due_at: Millis,
}

kebab_enum! {
    /// Which deadline a timer watches.
    TimerKind => wit::TimerKind {
        /// Yellow light.
        Warning,
        /// Sign-off deadline.
        SignOff,
        /// First-contact deadline.
        FirstContact,
        /// Resolution deadline.
        Resolution,
        /// Resolution still open some working days later.
        Overdue,
        /// A repeat found at intake.
        Repeat,
    }
}

/// A pending or decided extension request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Extension {
    /// Working days asked for.
    pub days: u32,
    /// Why.
    pub reason: String,
    /// Who asked.
    pub requested_by: String,
    /// `None` while pending; then approved or not.
    pub approved: Option<bool>,
}

/// The citizen's verdict at callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Satisfaction {
    /// Satisfied with the handling.
    pub satisfied: bool,
    /// The matter is resolved.
    pub resolved: bool,
    /// Notes from the call.
    pub note: String,
}

/// A work order (工单).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Case id.
    pub id: String,
    /// The district that owns it.
    pub district: String,
    /// Service code.
    pub category: String,
    /// Kind.
    pub kind: CaseKind,
    /// Intake channel.
    pub channel: Channel,
    /// Urgency.
    pub urgency: Urgency,
    /// Location.
    pub location: Location,
    /// Keyed hash of the caller; never the phone number.
    pub caller_key: String,
    /// Flags (`litigation`, `fire`, `repeat`, ...).
    #[schema(value_type = Vec<String>)]
    pub flags: wit::CaseFlags,
    /// Dispute details.
    pub dispute: Option<Dispute>,
    /// The citizen's description.
    pub description: String,
    /// Lifecycle state.
    pub status: CaseStatus,
    /// Eligibility outcome, once decided.
    pub eligibility: Option<EligibilityOutcome>,
    /// Leading unit.
    pub handler: Option<String>,
    /// Helping units.
    pub co_handlers: Vec<String>,
    /// Units that returned the case, oldest first.
    pub returned_by: Vec<String>,
    /// How many levels escalation moved it up.
    pub escalation_level: u32,
    /// Times reopened.
    pub reopen_count: u32,
    /// The unit supervising (督办) the case, if any.
    pub supervised_by: Option<String>,
    /// Deadlines.
    pub deadlines: Deadlines,
    /// Timers waiting to fire (indexed by due time).
    pub timers: Vec<PendingTimer>,
    /// Marks escalation set (`repeat`, ...), besides the contract's flags.
    #[serde(default)]
    pub marks: Vec<String>,
    /// When the case was paused (waiting for the citizen); its timers wait in `paused_timers`.
    #[serde(default)]
    pub paused_at: Option<Millis>,
    /// Timers held while paused.
    #[serde(default)]
    pub paused_timers: Vec<PendingTimer>,
    /// Extension request.
    pub extension: Option<Extension>,
    /// The case this one was merged into.
    pub merged_into: Option<String>,
    /// Callback verdict.
    pub satisfaction: Option<Satisfaction>,
    /// Who created it (token id).
    pub created_by: String,
    /// Created.
    pub created_at: Millis,
    /// Last changed.
    pub updated_at: Millis,
    /// Optimistic-concurrency version; every write increments it.
    pub version: u64,
    /// Number of events in its history.
    pub event_count: u64,
}

impl Case {
    /// The case as plug-ins see it (no description, no personal data).
    pub fn to_wit(&self) -> wit::Case {
        wit::Case {
            id: self.id.clone(),
            district: self.district.clone(),
            category: self.category.clone(),
            kind: self.kind.into(),
            channel: self.channel.into(),
            urgency: self.urgency.into(),
            location: wit::Location {
                community: self.location.community.clone(),
                grid: self.location.grid.clone(),
                lat: self.location.lat,
                lon: self.location.lon,
            },
            caller_key: self.caller_key.clone(),
            flags: self.flags,
            dispute: self.dispute.as_ref().map(|d| wit::Dispute {
                dispute_type: d.dispute_type.clone(),
                amount: d.amount,
                party_chambers: d.chambers.clone(),
            }),
            status: self.status.into(),
            eligibility: self.eligibility.as_ref().map(|e| wit::EligibilityOutcome {
                grid_admissible: e.grid_admissible,
                mediation: e.mediation.as_ref().and_then(|m| {
                    Some(wit::Mediation {
                        track: mediation_track(&m.track)?,
                        unit: m.unit.clone(),
                    })
                }),
            }),
            handler: self.handler.clone(),
            co_handlers: self.co_handlers.clone(),
            returned_by: self.returned_by.clone(),
            escalation_level: self.escalation_level,
            reopen_count: self.reopen_count,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// Whether the case is still open.
    pub fn is_open(&self) -> bool {
        !self.status.is_terminal()
    }

    /// The case's traffic light at `now`: red past its resolution deadline, yellow past its
    /// warning point, green while open and on time. None for closed cases and for cases
    /// whose clock is stopped (waiting for the citizen), since nothing can be late there; a
    /// replied case or one at callback is green, as its unit's part is done.
    pub fn light(&self, now: Millis) -> Option<Light> {
        if !self.is_open() || self.paused_at.is_some() {
            return None;
        }
        let late = !matches!(self.status, CaseStatus::Replied | CaseStatus::Callback);
        match (self.deadlines.resolution, self.deadlines.warning) {
            (Some(r), _) if late && now >= r => Some(Light::Red),
            (_, Some(w)) if late && now >= w => Some(Light::Yellow),
            (Some(_), _) => Some(Light::Green),
            _ => None,
        }
    }

    /// The light at `now` when it calls for attention (yellow or red), for the warning board.
    pub fn alert(&self, now: Millis) -> Option<Light> {
        self.light(now).filter(|l| *l != Light::Green)
    }
}

/// A case's traffic light (the one type: boards, overviews, warnings and filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Light {
    /// Past the resolution deadline.
    Red,
    /// Past the warning point.
    Yellow,
    /// Open and on time.
    Green,
}

impl Light {
    /// The light's name, as in URLs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Light::Red => "red",
            Light::Yellow => "yellow",
            Light::Green => "green",
        }
    }
}

impl std::str::FromStr for Light {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "red" => Ok(Light::Red),
            "yellow" => Ok(Light::Yellow),
            "green" => Ok(Light::Green),
            _ => Err(format!("`{s}` is not a light (green, yellow, red)")),
        }
    }
}

/// The contract's mediation track named `s`.
pub fn mediation_track(s: &str) -> Option<wit::MediationTrack> {
    use wit::MediationTrack as T;
    Some(match s {
        "chamber" => T::Chamber,
        "pre-litigation" => T::PreLitigation,
        "community" => T::Community,
        "industry" => T::Industry,
        "district" => T::District,
        "city" => T::City,
        _ => return None,
    })
}

/// The name of a contract mediation track.
pub fn mediation_track_name(t: wit::MediationTrack) -> &'static str {
    use wit::MediationTrack as T;
    match t {
        T::Chamber => "chamber",
        T::PreLitigation => "pre-litigation",
        T::Community => "community",
        T::Industry => "industry",
        T::District => "district",
        T::City => "city",
    }
}

/// A JSON value kept as its text. Decision records carry their whole input and output,
/// written on every decision and read rarely (replay, backtest, the history), so they are
/// never built as a tree on the way to the store. Equal when they hold the same JSON.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct RawJson(Box<serde_json::value::RawValue>);

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Events are an internally tagged enum, which serde reads through a buffer that a
        // raw value cannot be taken from: read a tree and keep its text (reads are rare).
        let tree = serde_json::Value::deserialize(d)?;
        Ok(RawJson::of(&tree))
    }
}

impl RawJson {
    /// `v` as JSON text.
    pub fn of<T: Serialize + ?Sized>(v: &T) -> RawJson {
        RawJson(serde_json::value::to_raw_value(v).expect("model types always serialize"))
    }

    /// Text that is already JSON (checked).
    pub fn from_text(text: String) -> serde_json::Result<RawJson> {
        serde_json::value::RawValue::from_string(text).map(RawJson)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Reads it as a `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.0.get())
    }

    /// Reads it as a JSON tree (for comparing and showing).
    pub fn value(&self) -> serde_json::Value {
        self.parse().unwrap_or_default()
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        // Text read back has its keys in sorted order, text just written in field order.
        self.get() == other.get() || self.value() == other.value()
    }
}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

/// Everything a rule decision was computed from and what it produced: enough to say why a
/// case went where it went, and to replay the decision exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The hook that decided.
    pub hook: crate::runtime::Hook,
    /// The plug-in and version that decided.
    pub plugin: PluginRef,
    /// The contract version.
    pub contract_version: String,
    /// The directory version decided against.
    pub directory_version: u64,
    /// sha256 of the canonical JSON of `input`.
    pub input_digest: String,
    /// The input: case, evaluation time, recent cases, timer.
    pub input: RawJson,
    /// The decision (`null` for "no opinion").
    pub output: RawJson,
    /// Reason codes.
    pub reasons: Vec<String>,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Wall-clock microseconds.
    pub duration_us: u64,
    /// The city default decided because the district's plug-in failed or had no opinion.
    #[serde(default)]
    pub fallback: bool,
}

/// A decision as a caller is shown it: which rule decided, and why — a record without its
/// input and output.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DecisionSummary {
    /// The hook.
    #[schema(value_type = String)]
    pub hook: crate::runtime::Hook,
    /// The plug-in's name.
    pub plugin: String,
    /// Its version (sha256).
    pub version: String,
    /// Reason codes.
    pub reasons: Vec<String>,
    /// The city default decided because the district's plug-in failed or had no opinion.
    pub fallback: bool,
}

impl DecisionSummary {
    /// What a decision record says, without its input and output.
    pub fn of(r: &DecisionRecord) -> Self {
        DecisionSummary {
            hook: r.hook,
            plugin: r.plugin.name.clone(),
            version: r.plugin.version.clone(),
            reasons: r.reasons.clone(),
            fallback: r.fallback,
        }
    }
}

/// One entry of a case's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the case's history, from 0.
    pub seq: u64,
    /// When.
    pub at: Millis,
    /// Who (token id, `system`, or `plugin:<name>`).
    pub actor: String,
    /// What happened.
    pub what: EventBody,
}

/// What an event records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventBody {
    /// The case was taken in.
    Received {
        /// Channel.
        channel: Channel,
    },
    /// A lifecycle action moved the case.
    Transition {
        /// The action.
        action: Action,
        /// State before.
        from: CaseStatus,
        /// State after.
        to: CaseStatus,
    },
    /// A rule decided something.
    Decision(Box<DecisionRecord>),
    /// A plug-in failed; the failure and what the host did instead.
    RuleFailure {
        /// The hook.
        hook: crate::runtime::Hook,
        /// The plug-in.
        plugin: PluginRef,
        /// The typed failure.
        failure: crate::runtime::PluginFailure,
        /// What happened instead (`manual-triage`, `city-default`).
        fallback: String,
    },
    /// An escalation action applied.
    Escalation {
        /// The timer that fired.
        timer: TimerKind,
        /// The action as applied.
        action: String,
        /// Its target (unit id, notice text, flag).
        detail: String,
    },
}

impl std::fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Case {
    /// A case as received at intake, before any rule has run.
    pub fn received(
        id: String,
        district: String,
        category: String,
        created_by: String,
        at: Millis,
    ) -> Case {
        Case {
            id,
            district,
            category,
            kind: CaseKind::Complaint,
            channel: Channel::Phone,
            urgency: Urgency::Normal,
            location: Location::default(),
            caller_key: String::new(),
            flags: wit::CaseFlags::empty(),
            dispute: None,
            description: String::new(),
            status: CaseStatus::Received,
            eligibility: None,
            handler: None,
            co_handlers: Vec::new(),
            returned_by: Vec::new(),
            escalation_level: 0,
            reopen_count: 0,
            supervised_by: None,
            deadlines: Deadlines::default(),
            timers: Vec::new(),
            marks: Vec::new(),
            paused_at: None,
            paused_timers: Vec::new(),
            extension: None,
            merged_into: None,
            satisfaction: None,
            created_by,
            created_at: at,
            updated_at: at,
            version: 0,
            event_count: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decision record keeps its input and output as text, survives the internally tagged
    /// event it travels in, and compares by content whatever the order of keys.
    #[test]
    fn raw_json_round_trips_through_an_event_and_compares_by_content() {
        let record = DecisionRecord {
            hook: crate::runtime::Hook::Routing,
            plugin: crate::runtime::PluginRef {
                name: "city-default".into(),
                version: "ab".repeat(32),
            },
            contract_version: "0.1.0".into(),
            directory_version: 1,
            input_digest: "00".into(),
            input: RawJson::from_text(r#"{"z":1,"a":{"y":[1,2],"b":"字"}}"#.into()).unwrap(),
            output: RawJson::of(&serde_json::json!({"lead": "jiyang/yuehe"})),
            reasons: vec!["route.grid".into()],
            fuel_used: 7,
            duration_us: 3,
            fallback: false,
        };
        assert_eq!(record.input.get(), r#"{"z":1,"a":{"y":[1,2],"b":"字"}}"#);
        let event = Event {
            seq: 0,
            at: 5,
            actor: "plugin:city-default".into(),
            what: EventBody::Decision(Box::new(record.clone())),
        };
        let text = serde_json::to_string(&event).unwrap();
        assert!(
            text.contains(r#""input":{"z":1,"a":{"y":[1,2],"b":"字"}}"#),
            "{text}"
        );
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, event);
        let EventBody::Decision(r) = &back.what else {
            panic!("{back:?}")
        };
        assert_eq!(r.input.value()["a"]["b"], "字");
        assert_ne!(
            r.input,
            RawJson::from_text(r#"{"z":2,"a":{"y":[1,2],"b":"字"}}"#.into()).unwrap()
        );
        assert!(RawJson::from_text("{not json".into()).is_err());
    }

    /// One light for every view: red past the deadline, yellow past the warning point,
    /// green on time; none for a closed or paused case; a replied case is green even when
    /// late (its unit's part is done); the warning board sees only yellow and red.
    #[test]
    fn a_case_has_one_light() {
        let mut c = Case::received("c-1".into(), "jiyang".into(), "noise".into(), "a".into(), 0);
        assert_eq!(c.light(10), None, "no deadline yet");
        c.status = CaseStatus::Dispatched;
        c.deadlines.warning = Some(100);
        c.deadlines.resolution = Some(200);
        assert_eq!(c.light(99), Some(Light::Green));
        assert_eq!(c.alert(99), None);
        assert_eq!(c.light(100), Some(Light::Yellow));
        assert_eq!(c.alert(150), Some(Light::Yellow));
        assert_eq!(c.light(200), Some(Light::Red));
        assert_eq!(c.alert(200), Some(Light::Red));
        c.paused_at = Some(150);
        assert_eq!(c.light(300), None, "a stopped clock cannot be late");
        c.paused_at = None;
        c.status = CaseStatus::Replied;
        assert_eq!(c.light(300), Some(Light::Green));
        assert_eq!(c.alert(300), None);
        c.status = CaseStatus::Closed;
        assert_eq!(c.light(300), None);
        for l in [Light::Red, Light::Yellow, Light::Green] {
            assert_eq!(l.as_str().parse::<Light>(), Ok(l));
            assert_eq!(serde_json::to_value(l).unwrap(), l.as_str());
        }
        assert!("amber".parse::<Light>().is_err());
    }
}
