//! The city default plug-in: eligibility, routing and escalation as the city sets them.
//! Districts without their own plug-in for a hook use this one.

use civic_rules_common::{CityDefault, Plugin};

civic_rules_sdk::export_plugin!(Plugin<CityDefault>);
