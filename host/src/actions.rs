//! The actions people take on a case, each declared once: its name, its route, the body it
//! reads, who besides a district's staff may take it, its label and form in the console.
//! The API's routes and OpenAPI bodies, the role check, the actions a case view offers and
//! the console's buttons are all derived from [`ACTIONS`]; when an action is legal is
//! asked of the state machine itself (each declaration's probe), never restated.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::lifecycle;
use crate::model::{Case, Deadlines};
use crate::schema::{SchemaFn, schema_of};

/// A lifecycle request on an existing case, as a person makes it.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseAction {
    /// 签收 by the handling unit.
    Sign,
    /// First contact made.
    Start,
    /// The unit's reply.
    Reply(String),
    /// 退单 with a reason; the case is routed again.
    Return(String),
    /// Ask for more working days.
    RequestExtension(u32, String),
    /// Approve the pending extension.
    ApproveExtension,
    /// Refuse the pending extension.
    RefuseExtension(String),
    /// Callback verdict.
    Callback {
        /// Satisfied.
        satisfied: bool,
        /// Resolved.
        resolved: bool,
        /// Notes.
        note: String,
    },
    /// Close.
    Close,
    /// Reopen; the case is routed again.
    Reopen(String),
    /// Merge into a duplicate.
    Merge(String),
    /// Waiting for the citizen: deadlines stop.
    Pause(String),
    /// The wait is over: deadlines move by the paused working time.
    Resume,
}

impl CaseAction {
    /// The action's name (as in URLs, access checks and the console).
    pub fn name(&self) -> &'static str {
        match self {
            CaseAction::Sign => "sign",
            CaseAction::Start => "start",
            CaseAction::Reply(_) => "reply",
            CaseAction::Return(_) => "return",
            CaseAction::RequestExtension(..) => "request-extension",
            CaseAction::ApproveExtension => "approve-extension",
            CaseAction::RefuseExtension(_) => "refuse-extension",
            CaseAction::Callback { .. } => "callback",
            CaseAction::Close => "close",
            CaseAction::Reopen(_) => "reopen",
            CaseAction::Merge(_) => "merge",
            CaseAction::Pause(_) => "pause",
            CaseAction::Resume => "resume",
        }
    }

    /// Its declaration.
    pub fn spec(&self) -> &'static ActionSpec {
        spec(self.name()).expect("every action is declared in ACTIONS (a test checks it)")
    }
}

/// How the console asks for a field of an action's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldKind {
    /// A line of text.
    Text,
    /// A paragraph.
    LongText,
    /// A whole number.
    Number,
    /// Yes or no.
    Check,
}

/// One field of an action's body, as the console asks for it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Field {
    /// The body's field.
    pub name: &'static str,
    /// How it is asked for.
    pub kind: FieldKind,
    /// Its label: Chinese, English.
    pub label: [&'static str; 2],
}

/// Reads an action's JSON body: the action and the case version the caller expects.
pub type ReadFn = fn(&[u8]) -> Result<(CaseAction, Option<u64>), String>;

/// One action, declared once.
#[derive(Serialize)]
pub struct ActionSpec {
    /// Its name.
    pub name: &'static str,
    /// Its route.
    pub path: &'static str,
    /// What it does, for the API's document.
    pub summary: &'static str,
    /// Its button: Chinese, English.
    pub label: [&'static str; 2],
    /// What the console asks for before sending it.
    pub fields: &'static [Field],
    /// Shown as a lesser button (it sends the case away or refuses something).
    pub secondary: bool,
    /// The case's lead unit may take it (a district's admins and dispatchers may take
    /// every action on its cases, a city admin on all).
    pub unit_handler: bool,
    /// Reads its body.
    #[serde(skip)]
    pub read: ReadFn,
    /// Its body's schema.
    #[serde(skip)]
    pub schema: SchemaFn,
    /// A representative lifecycle action for a case: the state machine's verdict on it says
    /// whether the action is offered.
    #[serde(skip)]
    pub probe: fn(&Case) -> lifecycle::Action,
}

/// The body of an action.
pub trait ActionBody: DeserializeOwned + utoipa::ToSchema {
    /// The action it asks for and the version it expects.
    fn action(self) -> (CaseAction, Option<u64>);
}

/// Reads `bytes` as a `B` (an empty body counts as `{}`), naming where it is wrong.
fn read_as<B: ActionBody>(bytes: &[u8]) -> Result<(CaseAction, Option<u64>), String> {
    let bytes = if bytes.is_empty() { &b"{}"[..] } else { bytes };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let body: B = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            format!("invalid JSON body: {inner}")
        } else {
            format!("invalid JSON body at `{path}`: {inner}")
        }
    })?;
    de.end().map_err(|e| format!("invalid JSON body: {e}"))?;
    Ok(body.action())
}

/// A reply.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyBody {
    /// The unit's reply (`reason` is accepted too).
    #[serde(alias = "reason")]
    pub text: String,
    /// The case version the caller read.
    pub version: Option<u64>,
}

/// An extension request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionBody {
    /// Working days asked for (1-30).
    pub days: u32,
    /// Why.
    pub reason: String,
    /// The case version the caller read.
    pub version: Option<u64>,
}

/// A callback's verdict.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackBody {
    /// The citizen is satisfied.
    pub satisfied: bool,
    /// The matter is resolved.
    pub resolved: bool,
    /// Notes from the call.
    #[serde(default)]
    pub note: String,
    /// The case version the caller read.
    pub version: Option<u64>,
}

/// A merge.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The case this one duplicates.
    pub into: String,
    /// The case version the caller read.
    pub version: Option<u64>,
}

/// A body that carries only a version, for the actions that need nothing else.
macro_rules! bare_action {
    ($name:ident, $action:expr) => {
        /// The body of an action that needs only the version.
        #[derive(Debug, Deserialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// The case version the caller read.
            pub version: Option<u64>,
        }
        impl ActionBody for $name {
            fn action(self) -> (CaseAction, Option<u64>) {
                ($action, self.version)
            }
        }
    };
}

bare_action!(SignBody, CaseAction::Sign);
bare_action!(StartBody, CaseAction::Start);
bare_action!(ApproveBody, CaseAction::ApproveExtension);
bare_action!(CloseBody, CaseAction::Close);
bare_action!(ResumeBody, CaseAction::Resume);

/// A body of one text field, for each action that takes one.
macro_rules! reason_action {
    ($name:ident, $variant:ident) => {
        /// The body of an action that takes a reason.
        #[derive(Debug, Deserialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Why.
            pub reason: String,
            /// The case version the caller read.
            pub version: Option<u64>,
        }
        impl ActionBody for $name {
            fn action(self) -> (CaseAction, Option<u64>) {
                (CaseAction::$variant(self.reason), self.version)
            }
        }
    };
}

reason_action!(ReturnBody, Return);
reason_action!(RefuseBody, RefuseExtension);
reason_action!(ReopenBody, Reopen);
reason_action!(PauseBody, Pause);

impl ActionBody for ReplyBody {
    fn action(self) -> (CaseAction, Option<u64>) {
        (CaseAction::Reply(self.text), self.version)
    }
}

impl ActionBody for ExtensionBody {
    fn action(self) -> (CaseAction, Option<u64>) {
        (
            CaseAction::RequestExtension(self.days, self.reason),
            self.version,
        )
    }
}

impl ActionBody for CallbackBody {
    fn action(self) -> (CaseAction, Option<u64>) {
        (
            CaseAction::Callback {
                satisfied: self.satisfied,
                resolved: self.resolved,
                note: self.note,
            },
            self.version,
        )
    }
}

impl ActionBody for MergeBody {
    fn action(self) -> (CaseAction, Option<u64>) {
        (CaseAction::Merge(self.into), self.version)
    }
}

const REASON: Field = Field {
    name: "reason",
    kind: FieldKind::LongText,
    label: ["原因", "Reason"],
};

fn handler(c: &Case) -> String {
    c.handler.clone().unwrap_or_default()
}

fn probe_text() -> String {
    "probe".into()
}

/// Every action a person may take on a case.
pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "sign",
        path: "/v1/cases/{id}/sign",
        summary: "The handling unit signs for the case (签收)",
        label: ["签收", "Sign"],
        fields: &[],
        secondary: false,
        unit_handler: true,
        read: read_as::<SignBody>,
        schema: schema_of::<SignBody>,
        probe: |c| lifecycle::Action::Sign { unit: handler(c) },
    },
    ActionSpec {
        name: "start",
        path: "/v1/cases/{id}/start",
        summary: "First contact made; work starts",
        label: ["开始办理", "Start work"],
        fields: &[],
        secondary: false,
        unit_handler: true,
        read: read_as::<StartBody>,
        schema: schema_of::<StartBody>,
        probe: |_| lifecycle::Action::Start,
    },
    ActionSpec {
        name: "reply",
        path: "/v1/cases/{id}/reply",
        summary: "The unit replies with its result",
        label: ["回复办理结果", "Reply"],
        fields: &[Field {
            name: "text",
            kind: FieldKind::LongText,
            label: ["回复内容", "Reply"],
        }],
        secondary: false,
        unit_handler: true,
        read: read_as::<ReplyBody>,
        schema: schema_of::<ReplyBody>,
        probe: |_| lifecycle::Action::Reply { text: probe_text() },
    },
    ActionSpec {
        name: "return",
        path: "/v1/cases/{id}/return",
        summary: "Return the case (退单) with a reason; it is routed again",
        label: ["退单", "Return"],
        fields: &[REASON],
        secondary: true,
        unit_handler: true,
        read: read_as::<ReturnBody>,
        schema: schema_of::<ReturnBody>,
        probe: |c| lifecycle::Action::Return {
            unit: handler(c),
            reason: probe_text(),
        },
    },
    ActionSpec {
        name: "request-extension",
        path: "/v1/cases/{id}/extension",
        summary: "Request an extension (延期)",
        label: ["申请延期", "Request extension"],
        fields: &[
            Field {
                name: "days",
                kind: FieldKind::Number,
                label: ["延期工作日", "Working days"],
            },
            REASON,
        ],
        secondary: false,
        unit_handler: true,
        read: read_as::<ExtensionBody>,
        schema: schema_of::<ExtensionBody>,
        probe: |_| lifecycle::Action::RequestExtension {
            days: 1,
            reason: probe_text(),
        },
    },
    ActionSpec {
        name: "approve-extension",
        path: "/v1/cases/{id}/extension/approve",
        summary: "Approve the pending extension",
        label: ["批准延期", "Approve extension"],
        fields: &[],
        secondary: false,
        unit_handler: false,
        read: read_as::<ApproveBody>,
        schema: schema_of::<ApproveBody>,
        // The service always moves the deadline later, by the days asked for.
        probe: |c| lifecycle::Action::ApproveExtension {
            resolution: c.deadlines.resolution.unwrap_or(0) + 1,
            timers: vec![],
        },
    },
    ActionSpec {
        name: "refuse-extension",
        path: "/v1/cases/{id}/extension/refuse",
        summary: "Refuse the pending extension",
        label: ["驳回延期", "Refuse extension"],
        fields: &[REASON],
        secondary: true,
        unit_handler: false,
        read: read_as::<RefuseBody>,
        schema: schema_of::<RefuseBody>,
        probe: |_| lifecycle::Action::RefuseExtension {
            reason: probe_text(),
        },
    },
    ActionSpec {
        name: "pause",
        path: "/v1/cases/{id}/pause",
        summary: "Wait for the citizen: deadlines stop",
        label: ["暂停（等待市民）", "Pause (wait for citizen)"],
        fields: &[REASON],
        secondary: false,
        unit_handler: false,
        read: read_as::<PauseBody>,
        schema: schema_of::<PauseBody>,
        probe: |_| lifecycle::Action::Pause {
            reason: probe_text(),
        },
    },
    ActionSpec {
        name: "resume",
        path: "/v1/cases/{id}/resume",
        summary: "End the wait: deadlines move by the paused working time",
        label: ["恢复计时", "Resume"],
        fields: &[],
        secondary: false,
        unit_handler: false,
        read: read_as::<ResumeBody>,
        schema: schema_of::<ResumeBody>,
        probe: |c| lifecycle::Action::Resume {
            timers: vec![],
            deadlines: Deadlines::clone(&c.deadlines),
        },
    },
    ActionSpec {
        name: "callback",
        path: "/v1/cases/{id}/callback",
        summary: "Record the callback (回访)",
        label: ["回访", "Callback"],
        fields: &[
            Field {
                name: "satisfied",
                kind: FieldKind::Check,
                label: ["市民满意", "Citizen satisfied"],
            },
            Field {
                name: "resolved",
                kind: FieldKind::Check,
                label: ["问题已解决", "Matter resolved"],
            },
            Field {
                name: "note",
                kind: FieldKind::LongText,
                label: ["回访记录", "Callback note"],
            },
        ],
        secondary: false,
        unit_handler: false,
        read: read_as::<CallbackBody>,
        schema: schema_of::<CallbackBody>,
        probe: |_| lifecycle::Action::Callback {
            satisfied: true,
            resolved: true,
            note: String::new(),
        },
    },
    ActionSpec {
        name: "close",
        path: "/v1/cases/{id}/close",
        summary: "Close the case (办结)",
        label: ["办结", "Close"],
        fields: &[],
        secondary: false,
        unit_handler: false,
        read: read_as::<CloseBody>,
        schema: schema_of::<CloseBody>,
        probe: |_| lifecycle::Action::Close,
    },
    ActionSpec {
        name: "reopen",
        path: "/v1/cases/{id}/reopen",
        summary: "Reopen the case; it is routed again",
        label: ["重新打开", "Reopen"],
        fields: &[REASON],
        secondary: false,
        unit_handler: false,
        read: read_as::<ReopenBody>,
        schema: schema_of::<ReopenBody>,
        probe: |_| lifecycle::Action::Reopen {
            reason: probe_text(),
        },
    },
    ActionSpec {
        name: "merge",
        path: "/v1/cases/{id}/merge",
        summary: "Merge into a duplicate",
        label: ["合并", "Merge"],
        fields: &[Field {
            name: "into",
            kind: FieldKind::Text,
            label: ["合并到工单号", "Merge into case"],
        }],
        secondary: true,
        unit_handler: false,
        read: read_as::<MergeBody>,
        schema: schema_of::<MergeBody>,
        probe: |_| lifecycle::Action::Merge {
            into: "probe-other-case".into(),
        },
    },
];

/// The declaration of the action named `name`.
pub fn spec(name: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// The actions the state machine would accept for `c` as it is (whether a caller may take
/// them is the access-control module's question), so clients offer only buttons that work.
pub fn offered(c: &Case) -> Vec<&'static str> {
    ACTIONS
        .iter()
        .filter(|a| lifecycle::apply(c, &(a.probe)(c), c.updated_at).is_ok())
        .map(|a| a.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each action; the match is exhaustive, so a new variant fails to compile until
    /// it is listed here, and then this test until it is declared in `ACTIONS` with a body
    /// that reads back as it.
    #[test]
    fn every_action_is_declared_once_and_reads_back_as_itself() {
        let samples = [
            (CaseAction::Sign, "{}"),
            (CaseAction::Start, ""),
            (CaseAction::Reply("x".into()), r#"{"text":"x"}"#),
            (CaseAction::Return("x".into()), r#"{"reason":"x"}"#),
            (
                CaseAction::RequestExtension(2, "x".into()),
                r#"{"days":2,"reason":"x"}"#,
            ),
            (CaseAction::ApproveExtension, "{}"),
            (CaseAction::RefuseExtension("x".into()), r#"{"reason":"x"}"#),
            (
                CaseAction::Callback {
                    satisfied: true,
                    resolved: false,
                    note: "n".into(),
                },
                r#"{"satisfied":true,"resolved":false,"note":"n"}"#,
            ),
            (CaseAction::Close, "{}"),
            (CaseAction::Reopen("x".into()), r#"{"reason":"x"}"#),
            (CaseAction::Merge("c-2".into()), r#"{"into":"c-2"}"#),
            (CaseAction::Pause("x".into()), r#"{"reason":"x"}"#),
            (CaseAction::Resume, r#"{"version":3}"#),
        ];
        let mut seen = std::collections::HashSet::new();
        for (action, body) in &samples {
            match action {
                CaseAction::Sign
                | CaseAction::Start
                | CaseAction::Reply(_)
                | CaseAction::Return(_)
                | CaseAction::RequestExtension(..)
                | CaseAction::ApproveExtension
                | CaseAction::RefuseExtension(_)
                | CaseAction::Callback { .. }
                | CaseAction::Close
                | CaseAction::Reopen(_)
                | CaseAction::Merge(_)
                | CaseAction::Pause(_)
                | CaseAction::Resume => {}
            }
            let spec =
                spec(action.name()).unwrap_or_else(|| panic!("{} is not declared", action.name()));
            assert!(seen.insert(spec.name), "{} declared twice", spec.name);
            let (read, _) = (spec.read)(body.as_bytes()).unwrap();
            assert_eq!(&read, action, "{}", spec.name);
            assert!(spec.path.starts_with("/v1/cases/{id}/"), "{}", spec.path);
        }
        assert_eq!(seen.len(), ACTIONS.len(), "every declaration has a sample");
        assert!((spec("reply").unwrap().read)(br#"{"text":"x","surprise":1}"#).is_err());
    }
}
