//! What can be done to a case, as data: recorded in every transition event and carried
//! by the API, the sweep and the intake flow. Whether an action is legal, and what it
//! changes, is `lifecycle::apply`'s alone.

use serde::{Deserialize, Serialize};

use super::{Deadlines, Millis, PendingTimer, TimerKind};

/// Something done to a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// Not admitted (不予受理).
    Reject {
        /// Why.
        reason: String,
    },
    /// Handed to an emergency line.
    Transfer {
        /// `110`, `119`, `120` or `122`.
        line: String,
    },
    /// A consultation answered on the phone (一线办结).
    AnswerAtIntake {
        /// The answer given.
        answer: String,
    },
    /// Admitted; waiting for routing.
    QueueForDispatch,
    /// Sent to a unit.
    Dispatch {
        /// Leading unit.
        lead: String,
        /// Helping units.
        co_handlers: Vec<String>,
        /// The deadlines set.
        deadlines: Deadlines,
        /// The timers that watch them.
        timers: Vec<PendingTimer>,
    },
    /// The handler signs for the case (签收).
    Sign {
        /// The signing unit (must be the handler).
        unit: String,
    },
    /// First contact with the citizen made; work starts.
    Start,
    /// The unit replies with its result.
    Reply {
        /// The reply.
        text: String,
    },
    /// The handler returns the case (退单) with a reason.
    Return {
        /// The returning unit (must be the handler).
        unit: String,
        /// Why it is not theirs.
        reason: String,
    },
    /// The handler asks for more time (延期).
    RequestExtension {
        /// Working days asked for.
        days: u32,
        /// Why.
        reason: String,
    },
    /// The pending extension is approved; the resolution deadline moves.
    ApproveExtension {
        /// The new resolution deadline.
        resolution: Millis,
        /// The timers that replace the resolution-related ones.
        timers: Vec<PendingTimer>,
    },
    /// The pending extension is refused.
    RefuseExtension {
        /// Why.
        reason: String,
    },
    /// The citizen is called back (回访).
    Callback {
        /// Satisfied with the handling.
        satisfied: bool,
        /// The matter is resolved.
        resolved: bool,
        /// Notes.
        #[serde(default)]
        note: String,
    },
    /// Closed (办结).
    Close,
    /// Reopened after an unsatisfied callback or a closed case coming back.
    Reopen {
        /// Why.
        reason: String,
    },
    /// Merged into a duplicate.
    Merge {
        /// The case this one duplicates.
        into: String,
    },
    /// Waiting for the citizen: deadlines stop running.
    Pause {
        /// What the case waits for.
        reason: String,
    },
    /// The wait is over; the paused timers come back, moved by the pause.
    Resume {
        /// The moved timers.
        timers: Vec<PendingTimer>,
        /// The moved deadlines.
        deadlines: Deadlines,
    },
    /// A timer set apart from the deadlines: a repeat found at intake is handed to
    /// escalation at once with a timer already due.
    SetTimer {
        /// The timer (replacing one of its kind).
        timer: PendingTimer,
    },
    /// A timer fired and was consumed (its escalation is applied with it).
    TimerFired {
        /// The timer.
        timer: PendingTimer,
    },
    /// Escalation: a unit supervises the case (督办).
    Supervise {
        /// The supervising unit.
        unit: String,
    },
    /// Escalation: a mark on the case (`repeat` also sets the contract's repeat flag).
    Mark {
        /// The mark.
        name: String,
    },
    /// Escalation: a deadline moves (its timer with it).
    SetDeadline {
        /// Which deadline.
        kind: TimerKind,
        /// The new time; must be in the future.
        due_at: Millis,
    },
    /// Escalation: the case moves to another unit one level up, which must sign for it in
    /// turn by `sign_off`.
    MoveTo {
        /// The new handler.
        unit: String,
        /// Its sign-off deadline.
        sign_off: Millis,
    },
}

impl Action {
    /// The action's name, as in URLs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Reject { .. } => "reject",
            Action::Transfer { .. } => "transfer",
            Action::AnswerAtIntake { .. } => "answer-at-intake",
            Action::QueueForDispatch => "queue-for-dispatch",
            Action::Dispatch { .. } => "dispatch",
            Action::Sign { .. } => "sign",
            Action::Start => "start",
            Action::Reply { .. } => "reply",
            Action::Return { .. } => "return",
            Action::RequestExtension { .. } => "request-extension",
            Action::ApproveExtension { .. } => "approve-extension",
            Action::RefuseExtension { .. } => "refuse-extension",
            Action::Callback { .. } => "callback",
            Action::Close => "close",
            Action::Reopen { .. } => "reopen",
            Action::Merge { .. } => "merge",
            Action::Pause { .. } => "pause",
            Action::Resume { .. } => "resume",
            Action::SetTimer { .. } => "set-timer",
            Action::TimerFired { .. } => "timer-fired",
            Action::Supervise { .. } => "supervise",
            Action::Mark { .. } => "mark",
            Action::SetDeadline { .. } => "set-deadline",
            Action::MoveTo { .. } => "move-to",
        }
    }
}
