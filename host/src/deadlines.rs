//! Deadlines set at dispatch: the domain's defaults by kind and urgency, replaced where the
//! district's routing decision says, turned into timers for the sweep to fire.

use crate::calendar::Calendar;
use crate::model::{CaseKind, Deadlines, Millis, PendingTimer, TimerKind, Urgency};
use crate::runtime::wit;

/// Default share of the resolution time after which the yellow light comes on.
pub const DEFAULT_WARNING_PERCENT: u8 = 80;
/// Working days after the resolution deadline when an open case gets a public notice.
pub const OVERDUE_NOTICE_WORKING_DAYS: u32 = 5;

/// The domain's default time limits (see the domain notes): emergency cases the same day.
pub fn defaults(kind: CaseKind, urgency: Urgency) -> (wit::Span, wit::Span, wit::Span) {
    use wit::Span::{Minutes, WorkingDays};
    if urgency == Urgency::Urgent {
        return (Minutes(30), Minutes(120), WorkingDays(0));
    }
    let resolution = match kind {
        CaseKind::Consultation => 2,
        CaseKind::Help | CaseKind::Suggestion | CaseKind::Praise => 10,
        CaseKind::Complaint | CaseKind::Report => 15,
    };
    (WorkingDays(1), WorkingDays(1), WorkingDays(resolution))
}

fn at(cal: &Calendar, from: Millis, span: wit::Span) -> Millis {
    match span {
        wit::Span::Minutes(m) => cal.add_minutes(from, m),
        wit::Span::WorkingDays(d) => cal.add_working_days(from, d),
    }
}

/// The deadlines and timers for a case dispatched at `now`.
pub fn at_dispatch(
    cal: &Calendar,
    now: Millis,
    kind: CaseKind,
    urgency: Urgency,
    overrides: &wit::DeadlineOverrides,
) -> (Deadlines, Vec<PendingTimer>) {
    let (sign, contact, resolve) = defaults(kind, urgency);
    let sign_off = at(cal, now, overrides.sign_off.unwrap_or(sign));
    let first_contact = at(cal, now, overrides.first_contact.unwrap_or(contact));
    let resolution = at(cal, now, overrides.resolution.unwrap_or(resolve));
    let percent = overrides
        .warning_percent
        .unwrap_or(DEFAULT_WARNING_PERCENT)
        .clamp(1, 100) as i64;
    let warning = now + (resolution - now) * percent / 100;
    let (deadlines, timers) = resolution_timers(cal, resolution, Some(warning));
    let mut all = vec![
        PendingTimer {
            kind: TimerKind::SignOff,
            due_at: sign_off,
        },
        PendingTimer {
            kind: TimerKind::FirstContact,
            due_at: first_contact,
        },
    ];
    all.extend(timers);
    (
        Deadlines {
            sign_off: Some(sign_off),
            first_contact: Some(first_contact),
            ..deadlines
        },
        all,
    )
}

/// The resolution-related deadlines and timers (warning, resolution, overdue notice) for a
/// resolution deadline, used at dispatch and when an extension moves it.
pub fn resolution_timers(
    cal: &Calendar,
    resolution: Millis,
    warning: Option<Millis>,
) -> (Deadlines, Vec<PendingTimer>) {
    let overdue = cal.add_working_days(resolution - 1, OVERDUE_NOTICE_WORKING_DAYS);
    let mut timers = vec![
        PendingTimer {
            kind: TimerKind::Resolution,
            due_at: resolution,
        },
        PendingTimer {
            kind: TimerKind::Overdue,
            due_at: overdue,
        },
    ];
    if let Some(w) = warning.filter(|w| *w < resolution) {
        timers.insert(
            0,
            PendingTimer {
                kind: TimerKind::Warning,
                due_at: w,
            },
        );
    }
    (
        Deadlines {
            resolution: Some(resolution),
            warning,
            ..Deadlines::default()
        },
        timers,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{format_date, parse_date};

    fn none() -> wit::DeadlineOverrides {
        wit::DeadlineOverrides {
            sign_off: None,
            first_contact: None,
            resolution: None,
            warning_percent: None,
        }
    }

    #[test]
    fn defaults_follow_the_domain_table() {
        let cal = Calendar::bundled();
        let monday_9 = cal.start_of(parse_date("2026-11-30").unwrap()) + 9 * 3_600_000;
        let (d, timers) = at_dispatch(
            &cal,
            monday_9,
            CaseKind::Complaint,
            Urgency::Normal,
            &none(),
        );
        let day = |t: Option<Millis>| format_date(cal.day_of(t.unwrap() - 1));
        assert_eq!(day(d.sign_off), "2026-12-01");
        assert_eq!(day(d.first_contact), "2026-12-01");
        assert_eq!(day(d.resolution), "2026-12-21", "15 working days");
        assert!(d.warning.unwrap() < d.resolution.unwrap());
        let kinds: Vec<_> = timers.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                TimerKind::SignOff,
                TimerKind::FirstContact,
                TimerKind::Warning,
                TimerKind::Resolution,
                TimerKind::Overdue
            ]
        );
        let overdue = timers
            .iter()
            .find(|t| t.kind == TimerKind::Overdue)
            .unwrap()
            .due_at;
        assert_eq!(
            format_date(cal.day_of(overdue - 1)),
            "2026-12-28",
            "5 working days after the deadline"
        );

        let (u, _) = at_dispatch(
            &cal,
            monday_9,
            CaseKind::Complaint,
            Urgency::Urgent,
            &none(),
        );
        assert_eq!(u.sign_off, Some(monday_9 + 30 * 60_000));
        assert_eq!(day(u.resolution), "2026-11-30", "emergency: same day");
    }

    #[test]
    fn overrides_replace_defaults() {
        let cal = Calendar::bundled();
        let t = cal.start_of(parse_date("2026-11-30").unwrap()) + 9 * 3_600_000;
        let o = wit::DeadlineOverrides {
            sign_off: Some(wit::Span::Minutes(30)),
            first_contact: None,
            resolution: Some(wit::Span::WorkingDays(5)),
            warning_percent: Some(50),
        };
        let (d, _) = at_dispatch(&cal, t, CaseKind::Complaint, Urgency::Normal, &o);
        assert_eq!(d.sign_off, Some(t + 30 * 60_000));
        assert_eq!(
            format_date(cal.day_of(d.resolution.unwrap() - 1)),
            "2026-12-07",
            "counting starts the next working day"
        );
        assert_eq!(d.warning, Some(t + (d.resolution.unwrap() - t) / 2));
    }
}
