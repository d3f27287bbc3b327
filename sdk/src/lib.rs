//! The civic-rules guest SDK: write a district's rules as a sandboxed plug-in.
//!
//! A plug-in implements [`Rules`] — one method per hook, each answering "no opinion"
//! (`Ok(None)`) by default, in which case the host uses the city default — and registers
//! it with [`export_plugin!`]:
//!
//! ```ignore
//! use civic_rules_sdk::prelude::*;
//!
//! struct MyDistrict;
//!
//! impl Rules for MyDistrict {
//!     fn routing(case: &Case, _ctx: &Context) -> RuleResult<RoutingDecision> {
//!         Ok(Some(route_to(&case.district).because("route.desk")))
//!     }
//! }
//!
//! civic_rules_sdk::export_plugin!(MyDistrict);
//! ```
//!
//! Plug-ins are built for `wasm32-unknown-unknown` and turned into components by
//! `civic plugin build` (or by the workspace build); they import nothing but the
//! read-only [`directory`] and a bounded [`log`], so a decision is a pure function of
//! the plug-in, its configuration, the case, the context and the directory version.
//!
//! With the `testing` feature, [`testing`] gives case builders and an in-memory
//! directory so rules can be unit-tested natively with `cargo test`.
#![deny(missing_docs)]

// Lets the generated bindings name this crate by its public path, as plug-ins see it.
extern crate self as civic_rules_sdk;

mod builders;
pub mod directory;
pub mod log;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(all(target_arch = "wasm32", feature = "bump-alloc"))]
mod bump;

pub use builders::*;

/// The contract version this SDK builds plug-ins against.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// Generated bindings. Not part of the API: use the re-exports at the crate root.
#[doc(hidden)]
pub mod __private {
    #[allow(missing_docs, clippy::all, unsafe_op_in_unsafe_fn)]
    pub mod wit {
        wit_bindgen::generate!({
            path: "wit/since_v0.1.0",
            world: "plugin",
            pub_export_macro: true,
            export_macro_name: "__export_bindings",
            default_bindings_module: "civic_rules_sdk::__private::wit",
            runtime_path: "civic_rules_sdk::__private::wit_bindgen::rt",
            bitflags_path: "civic_rules_sdk::__private::wit_bindgen::rt::bitflags",
            additional_derives: [PartialEq],
        });
    }
    pub use wit::exports::civic::rules::hooks::Guest;
    pub use wit_bindgen;

    /// Runs once at the start of every exported call.
    ///
    /// Every decision runs in a fresh instance, so this runs once per instance: it
    /// reports the panic message to the host before the guest traps, which is how
    /// the host can say *why* a plug-in failed.
    #[inline]
    pub fn enter() {
        #[cfg(target_arch = "wasm32")]
        {
            use core::sync::atomic::{AtomicBool, Ordering};
            static INSTALLED: AtomicBool = AtomicBool::new(false);
            if !INSTALLED.swap(true, Ordering::Relaxed) {
                std::panic::set_hook(Box::new(|info| {
                    let message = info.to_string();
                    wit::civic::rules::log::report_panic(&message);
                }));
            }
        }
    }
}

/// A work order as rules see it (the WIT `case` record).
pub use __private::wit::civic::rules::types::Case;
pub use __private::wit::civic::rules::types::{
    Action, Admissibility, CaseFlags, CaseKind, CaseStatus, CategoryInfo, Channel, Context,
    DeadlineChange, DeadlineOverrides, Dispute, EligibilityDecision, EligibilityOutcome,
    EmergencyLine, EscalationDecision, Location, Mediation, MediationTrack, RecentCase, Rejection,
    RejectionReason, RoutingDecision, RuleError, Span, Timer, TimerKind, Timestamp, Unit, UnitKind,
    Urgency,
};

/// What a hook returns: a decision, "no opinion" (`None`: the host uses the city
/// default for this hook), or a typed [`RuleError`].
pub type RuleResult<T> = Result<Option<T>, RuleError>;

/// A district's rules. Implement the hooks you have an opinion on; the rest default to
/// "no opinion" and the host falls back to the city default.
pub trait Rules {
    /// Is the case admissible; may the grid take it; which mediation track.
    fn eligibility(case: &Case, ctx: &Context) -> RuleResult<EligibilityDecision> {
        let _ = (case, ctx);
        Ok(None)
    }

    /// Who leads the case, who helps, and which deadlines differ from the defaults.
    fn routing(case: &Case, ctx: &Context) -> RuleResult<RoutingDecision> {
        let _ = (case, ctx);
        Ok(None)
    }

    /// What to do when one of the case's timers fires. No actions means nothing to do.
    fn escalation(case: &Case, timer: &Timer, ctx: &Context) -> RuleResult<EscalationDecision> {
        let _ = (case, timer, ctx);
        Ok(None)
    }
}

/// Registers a type implementing [`Rules`] as this plug-in's hooks. Use once per crate.
#[macro_export]
macro_rules! export_plugin {
    ($rules:ty) => {
        const _: () = {
            #[doc(hidden)]
            pub struct __CivicRulesExport;

            impl $crate::__private::Guest for __CivicRulesExport {
                fn eligibility(
                    case: $crate::Case,
                    ctx: $crate::Context,
                ) -> ::core::result::Result<::core::option::Option<$crate::EligibilityDecision>, $crate::RuleError>
                {
                    $crate::__private::enter();
                    <$rules as $crate::Rules>::eligibility(&case, &ctx)
                }
                fn routing(
                    case: $crate::Case,
                    ctx: $crate::Context,
                ) -> ::core::result::Result<::core::option::Option<$crate::RoutingDecision>, $crate::RuleError>
                {
                    $crate::__private::enter();
                    <$rules as $crate::Rules>::routing(&case, &ctx)
                }
                fn escalation(
                    case: $crate::Case,
                    timer: $crate::Timer,
                    ctx: $crate::Context,
                ) -> ::core::result::Result<::core::option::Option<$crate::EscalationDecision>, $crate::RuleError>
                {
                    $crate::__private::enter();
                    <$rules as $crate::Rules>::escalation(&case, &timer, &ctx)
                }
            }

            // Exported symbols only exist in Wasm: names like `civic:rules/hooks@0.1.0#routing`
            // are not valid in native linkers' version scripts.
            #[cfg(target_arch = "wasm32")]
            $crate::__private::wit::__export_bindings!(__CivicRulesExport with_types_in $crate::__private::wit);
        };
    };
}

/// Everything a plug-in author usually needs.
pub mod prelude {
    pub use crate::builders::*;
    pub use crate::{
        Action, Admissibility, Case, CaseFlags, CaseKind, CaseStatus, CategoryInfo, Channel,
        Context, DeadlineChange, DeadlineOverrides, Dispute, EligibilityDecision,
        EligibilityOutcome, EmergencyLine, EscalationDecision, Location, Mediation, MediationTrack,
        RecentCase, Rejection, RejectionReason, RoutingDecision, RuleError, RuleResult, Rules,
        Span, Timer, TimerKind, Unit, UnitKind, Urgency, directory, log,
    };
}
