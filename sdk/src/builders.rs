//! Typed helpers that build decisions, so rules read like the policy they implement.

use crate::{
    Action, Admissibility, DeadlineChange, DeadlineOverrides, EligibilityDecision, EmergencyLine,
    EscalationDecision, Mediation, MediationTrack, Rejection, RejectionReason, RoutingDecision,
    Span, TimerKind, Timestamp,
};

/// An admissible case, not admissible to the grid, without mediation.
pub fn admissible() -> EligibilityDecision {
    EligibilityDecision {
        admissibility: Admissibility::Admissible,
        grid_admissible: false,
        mediation: None,
        reasons: Vec::new(),
    }
}

/// A case the hotline does not admit, for `reason`.
pub fn rejected(reason: RejectionReason) -> EligibilityDecision {
    EligibilityDecision {
        admissibility: Admissibility::Rejected(Rejection {
            reason,
            related_case: None,
        }),
        ..admissible()
    }
}

/// A case that belongs to an emergency line.
pub fn transferred(line: EmergencyLine) -> EligibilityDecision {
    EligibilityDecision {
        admissibility: Admissibility::Transferred(line),
        ..admissible()
    }
}

impl EligibilityDecision {
    /// Adds a reason code a dispatcher can read, such as `grid.admissible`.
    pub fn because(mut self, code: impl Into<String>) -> Self {
        self.reasons.push(code.into());
        self
    }

    /// Sets whether the grid may take the case.
    pub fn grid(mut self, admissible: bool) -> Self {
        self.grid_admissible = admissible;
        self
    }

    /// Assigns a mediation track and body.
    pub fn mediation(mut self, track: MediationTrack, unit: impl Into<String>) -> Self {
        self.mediation = Some(Mediation {
            track,
            unit: unit.into(),
        });
        self
    }

    /// Names the earlier case a rejection refers to.
    pub fn related_case(mut self, id: impl Into<String>) -> Self {
        if let Admissibility::Rejected(r) = &mut self.admissibility {
            r.related_case = Some(id.into());
        }
        self
    }

    /// Whether the hotline takes the case.
    pub fn is_admissible(&self) -> bool {
        matches!(self.admissibility, Admissibility::Admissible)
    }
}

/// A routing decision with `lead` as the leading unit and default deadlines.
pub fn route_to(lead: impl Into<String>) -> RoutingDecision {
    RoutingDecision {
        lead: lead.into(),
        co_handlers: Vec::new(),
        deadlines: DeadlineOverrides {
            sign_off: None,
            first_contact: None,
            resolution: None,
            warning_percent: None,
        },
        reasons: Vec::new(),
    }
}

impl RoutingDecision {
    /// Adds a reason code.
    pub fn because(mut self, code: impl Into<String>) -> Self {
        self.reasons.push(code.into());
        self
    }

    /// Adds a co-handling unit.
    pub fn with_co_handler(mut self, unit: impl Into<String>) -> Self {
        self.co_handlers.push(unit.into());
        self
    }

    /// Overrides the sign-off deadline.
    pub fn sign_off_within(mut self, span: Span) -> Self {
        self.deadlines.sign_off = Some(span);
        self
    }

    /// Overrides the first-contact deadline.
    pub fn first_contact_within(mut self, span: Span) -> Self {
        self.deadlines.first_contact = Some(span);
        self
    }

    /// Overrides the resolution deadline.
    pub fn resolve_within(mut self, span: Span) -> Self {
        self.deadlines.resolution = Some(span);
        self
    }

    /// Raises the yellow-light warning at `percent` of the resolution deadline.
    pub fn warn_at_percent(mut self, percent: u8) -> Self {
        self.deadlines.warning_percent = Some(percent);
        self
    }
}

/// An escalation decision with no actions yet ("nothing to do" until actions are added).
pub fn escalate() -> EscalationDecision {
    EscalationDecision {
        actions: Vec::new(),
        reasons: Vec::new(),
    }
}

impl EscalationDecision {
    /// Adds a reason code.
    pub fn because(mut self, code: impl Into<String>) -> Self {
        self.reasons.push(code.into());
        self
    }

    /// Reminds (催办) a unit.
    pub fn remind(mut self, unit: impl Into<String>) -> Self {
        self.actions.push(Action::Remind(unit.into()));
        self
    }

    /// Puts the case under supervision (督办) by a unit.
    pub fn supervise(mut self, unit: impl Into<String>) -> Self {
        self.actions.push(Action::Supervise(unit.into()));
        self
    }

    /// Issues a public notice (通报).
    pub fn public_notice(mut self, text: impl Into<String>) -> Self {
        self.actions.push(Action::PublicNotice(text.into()));
        self
    }

    /// Moves the case to another unit.
    pub fn move_to(mut self, unit: impl Into<String>) -> Self {
        self.actions.push(Action::MoveTo(unit.into()));
        self
    }

    /// Replaces the deadline of one timer kind.
    pub fn set_deadline(mut self, kind: TimerKind, due_at: Timestamp) -> Self {
        self.actions
            .push(Action::SetDeadline(DeadlineChange { kind, due_at }));
        self
    }

    /// Marks the case with a flag.
    pub fn flag(mut self, name: impl Into<String>) -> Self {
        self.actions.push(Action::Flag(name.into()));
        self
    }
}
