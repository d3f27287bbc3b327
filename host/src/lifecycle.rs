//! The work-order state machine: which action is legal in which state, and what it changes.
//! It is the one place a case changes: a person's action, an escalation's action when a
//! timer fires, a routing decision's dispatch — each is an [`Action`] applied here.
//!
//! Pure functions: [`apply`] takes a case and an action and returns the changed case, or a
//! [`LifecycleError`] naming the state and the action — in which case nothing changes.
//! Deadlines and timers are computed by the caller (from the working-time calendar) and
//! carried in the actions that set them.

pub use crate::model::Action;
use crate::model::{
    Case, CaseStatus, Deadlines, Extension, Millis, PendingTimer, Satisfaction, TimerKind,
};

/// Longest free text an action carries (reasons, replies, notes).
pub const MAX_TEXT: usize = 2000;

/// An action that is not legal for the case as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot {action} case {case} while it is {status}: {why}")]
pub struct LifecycleError {
    /// The case.
    pub case: String,
    /// Its state.
    pub status: CaseStatus,
    /// The refused action.
    pub action: &'static str,
    /// Why.
    pub why: String,
    /// The request itself is wrong (an empty reason, a day count out of range): a 422, not
    /// a conflict with the case's state.
    pub invalid_input: bool,
}

/// Applies `action` at time `at`; on error the case is untouched (it is borrowed).
pub fn apply(case: &Case, action: &Action, at: Millis) -> Result<Case, LifecycleError> {
    use CaseStatus as S;
    let refuse = |why: String, invalid_input: bool| LifecycleError {
        case: case.id.clone(),
        status: case.status,
        action: action.name(),
        why,
        invalid_input,
    };
    let err = |why: String| refuse(why, false);
    let bad = |why: String| refuse(why, true);
    let wrong_state = |expected: &str| err(format!("only allowed when the case is {expected}"));
    let text = |t: &str, what: &'static str| -> Result<(), LifecycleError> {
        if t.trim().is_empty() {
            return Err(bad(format!("{what} must not be empty")));
        }
        crate::text::check(what, t, MAX_TEXT).map_err(|e| bad(e.to_string()))
    };
    let mut c = case.clone();
    c.updated_at = at;
    match action {
        Action::Reject { reason } => {
            if c.status != S::Received {
                return Err(wrong_state("received"));
            }
            text(reason, "the reason")?;
            c.status = S::Rejected;
        }
        Action::Transfer { line } => {
            if c.status != S::Received {
                return Err(wrong_state("received"));
            }
            if !matches!(line.as_str(), "110" | "119" | "120" | "122") {
                return Err(bad(format!(
                    "`{line}` is not an emergency line (110, 119, 120, 122)"
                )));
            }
            c.status = S::Transferred;
        }
        Action::AnswerAtIntake { answer } => {
            if c.status != S::Received {
                return Err(wrong_state("received"));
            }
            text(answer, "the answer")?;
            c.status = S::AnsweredAtIntake;
        }
        Action::QueueForDispatch => {
            if c.status != S::Received {
                return Err(wrong_state("received"));
            }
            c.status = S::PendingDispatch;
        }
        Action::Dispatch {
            lead,
            co_handlers,
            deadlines,
            timers,
        } => {
            if c.status != S::PendingDispatch {
                return Err(wrong_state("pending dispatch"));
            }
            if lead.is_empty() || co_handlers.contains(lead) {
                return Err(err(
                    "the lead unit must be set and not also a co-handler".into()
                ));
            }
            c.handler = Some(lead.clone());
            c.co_handlers = co_handlers.clone();
            c.deadlines = deadlines.clone();
            c.timers = timers.clone();
            c.status = S::Dispatched;
        }
        Action::Sign { unit } => {
            if c.status != S::Dispatched {
                return Err(wrong_state("dispatched"));
            }
            handler_only(&c, unit).map_err(err)?;
            c.timers.retain(|t| t.kind != TimerKind::SignOff);
            c.status = S::Signed;
        }
        Action::Start => {
            if c.status != S::Signed {
                return Err(wrong_state("signed"));
            }
            c.timers.retain(|t| t.kind != TimerKind::FirstContact);
            c.status = S::InProgress;
        }
        Action::Reply { text: t } => {
            if !matches!(c.status, S::Signed | S::InProgress) {
                return Err(wrong_state("signed or in progress"));
            }
            text(t, "the reply")?;
            c.timers.clear();
            c.paused_at = None;
            c.paused_timers.clear();
            c.status = S::Replied;
        }
        Action::Return { unit, reason } => {
            if !matches!(c.status, S::Dispatched | S::Signed) {
                return Err(wrong_state("dispatched or signed"));
            }
            handler_only(&c, unit).map_err(err)?;
            text(reason, "the return reason")?;
            c.returned_by.push(unit.clone());
            c.paused_at = None;
            c.paused_timers.clear();
            c.handler = None;
            c.co_handlers.clear();
            c.timers.clear();
            c.deadlines = Deadlines::default();
            c.extension = None;
            c.status = S::PendingDispatch;
        }
        Action::RequestExtension { days, reason } => {
            if !matches!(c.status, S::Signed | S::InProgress) {
                return Err(wrong_state("signed or in progress"));
            }
            if c.extension.as_ref().is_some_and(|e| e.approved.is_none()) {
                return Err(err("an extension request is already pending".into()));
            }
            if !(1..=30).contains(days) {
                return Err(bad(format!("{days} working days is not within 1-30")));
            }
            text(reason, "the reason")?;
            c.extension = Some(Extension {
                days: *days,
                reason: reason.clone(),
                requested_by: c.handler.clone().unwrap_or_default(),
                approved: None,
            });
        }
        Action::ApproveExtension { resolution, timers } => {
            pending_extension(&c).map_err(err)?;
            if c.deadlines.resolution.is_some_and(|r| *resolution <= r) {
                return Err(err(
                    "the new resolution deadline must be later than the current one".into(),
                ));
            }
            if let Some(e) = c.extension.as_mut() {
                e.approved = Some(true);
            }
            c.deadlines.resolution = Some(*resolution);
            c.timers
                .retain(|t| matches!(t.kind, TimerKind::SignOff | TimerKind::FirstContact));
            c.timers.extend(timers.iter().copied());
            c.deadlines.warning = timers
                .iter()
                .find(|t| t.kind == TimerKind::Warning)
                .map(|t| t.due_at);
        }
        Action::RefuseExtension { reason } => {
            pending_extension(&c).map_err(err)?;
            text(reason, "the reason")?;
            if let Some(e) = c.extension.as_mut() {
                e.approved = Some(false);
            }
        }
        Action::Callback {
            satisfied,
            resolved,
            note,
        } => {
            if c.status != S::Replied {
                return Err(wrong_state("replied"));
            }
            crate::text::check("the note", note, MAX_TEXT).map_err(|e| bad(e.to_string()))?;
            c.satisfaction = Some(Satisfaction {
                satisfied: *satisfied,
                resolved: *resolved,
                note: note.clone(),
            });
            c.status = S::Callback;
        }
        Action::Close => {
            if c.status != S::Callback {
                return Err(wrong_state("called back"));
            }
            c.timers.clear();
            c.status = S::Closed;
        }
        Action::Reopen { reason } => {
            if !matches!(c.status, S::Callback | S::Closed) {
                return Err(wrong_state("called back or closed"));
            }
            text(reason, "the reason")?;
            c.reopen_count += 1;
            c.handler = None;
            c.co_handlers.clear();
            c.timers.clear();
            c.deadlines = Deadlines::default();
            c.extension = None;
            c.satisfaction = None;
            c.status = S::PendingDispatch;
        }
        Action::Pause { reason } => {
            if !matches!(c.status, S::Signed | S::InProgress) || c.paused_at.is_some() {
                return Err(err(
                    "only a signed or in-progress case that is not paused can be paused".into(),
                ));
            }
            text(reason, "the reason")?;
            c.paused_at = Some(at);
            c.paused_timers = std::mem::take(&mut c.timers);
        }
        Action::Resume { timers, deadlines } => {
            if c.paused_at.is_none() {
                return Err(err("the case is not paused".into()));
            }
            c.paused_at = None;
            c.paused_timers.clear();
            c.timers = timers.clone();
            c.deadlines = deadlines.clone();
        }
        Action::Merge { into } => {
            if c.status.is_terminal() {
                return Err(wrong_state("open"));
            }
            if *into == c.id || into.is_empty() {
                return Err(bad("a case cannot be merged into itself".into()));
            }
            c.merged_into = Some(into.clone());
            c.timers.clear();
            c.paused_at = None;
            c.paused_timers.clear();
            c.status = S::Merged;
        }
        Action::SetTimer { timer } => {
            if c.status.is_terminal() {
                return Err(wrong_state("open"));
            }
            c.timers.retain(|t| t.kind != timer.kind);
            c.timers.push(*timer);
        }
        Action::TimerFired { timer } => {
            if !c.timers.contains(timer) {
                return Err(err(format!(
                    "the {:?} timer due at {} is not on the case",
                    timer.kind, timer.due_at
                )));
            }
            c.timers.retain(|t| t != timer);
        }
        Action::Supervise { unit } => {
            c.supervised_by = Some(unit.clone());
        }
        Action::Mark { name } => {
            if name == "repeat" {
                c.flags |= crate::runtime::wit::CaseFlags::REPEAT;
            }
            if !c.marks.contains(name) {
                c.marks.push(name.clone());
            }
        }
        Action::SetDeadline { kind, due_at } => {
            if *due_at <= at || c.status.is_terminal() {
                return Err(err(format!(
                    "{kind:?} at {due_at} is not in the future or the case is closed"
                )));
            }
            c.timers.retain(|t| t.kind != *kind);
            c.timers.push(PendingTimer {
                kind: *kind,
                due_at: *due_at,
            });
            match kind {
                TimerKind::SignOff => c.deadlines.sign_off = Some(*due_at),
                TimerKind::FirstContact => c.deadlines.first_contact = Some(*due_at),
                TimerKind::Resolution => c.deadlines.resolution = Some(*due_at),
                TimerKind::Warning => c.deadlines.warning = Some(*due_at),
                TimerKind::Overdue | TimerKind::Repeat => {}
            }
        }
        Action::MoveTo { unit, sign_off } => {
            if !matches!(c.status, S::Dispatched | S::Signed | S::InProgress)
                || c.handler.as_deref() == Some(unit)
            {
                return Err(err(format!(
                    "{unit}: the case is {} with {}",
                    c.status,
                    c.handler.as_deref().unwrap_or("no handler")
                )));
            }
            c.handler = Some(unit.clone());
            c.co_handlers.retain(|x| x != unit);
            c.status = S::Dispatched;
            c.escalation_level += 1;
            c.timers.retain(|t| t.kind != TimerKind::SignOff);
            c.timers.push(PendingTimer {
                kind: TimerKind::SignOff,
                due_at: *sign_off,
            });
            c.deadlines.sign_off = Some(*sign_off);
        }
    }
    Ok(c)
}

fn handler_only(c: &Case, unit: &str) -> Result<(), String> {
    match &c.handler {
        Some(h) if h == unit => Ok(()),
        Some(h) => Err(format!(
            "unit {unit} is not the handler (the handler is {h})"
        )),
        None => Err("the case has no handler".into()),
    }
}

fn pending_extension(c: &Case) -> Result<(), String> {
    match &c.extension {
        Some(e) if e.approved.is_none() => Ok(()),
        _ => Err("there is no pending extension request".into()),
    }
}

#[cfg(test)]
pub(crate) mod tests;
