//! Prometheus metrics: requests, decisions per plug-in and outcome, fuel, latencies,
//! rule failures, and cases by status (read from the store's index at scrape time).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::runtime::Hook;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    district: String,
    hook: String,
    plugin: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    district: String,
    hook: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    district: String,
    status: String,
}

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    decisions: Family<DecisionLabels, Counter>,
    fuel: Family<HookLabels, Histogram>,
    decision_latency: Family<HookLabels, Histogram>,
    failures: Family<FailureLabels, Counter>,
    cases: Family<StatusLabels, Gauge>,
    sweeps: Family<OutcomeLabels, Counter>,
    timers_fired: Counter,
    timer_panics: Counter,
    sweep_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        Self::with_registry(Registry::with_prefix("civic"))
    }

    /// Registers every metric, each labelled `node="NAME"`: several hosts on one store each
    /// count their own requests and decisions, and the label says whose they are.
    pub fn for_node(node: &str) -> Self {
        Self::with_registry(Registry::with_prefix_and_labels(
            "civic",
            [("node".into(), node.to_owned().into())].into_iter(),
        ))
    }

    fn with_registry(mut registry: Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        let decisions = Family::<DecisionLabels, Counter>::default();
        let fuel = Family::<HookLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1000.0, 4.0, 10))
        });
        let decision_latency = Family::<HookLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000002, 2.0, 16))
        });
        let failures = Family::<FailureLabels, Counter>::default();
        let cases = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests by matched route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by matched route",
            latency.clone(),
        );
        registry.register(
            "decisions",
            "Rule decisions by district, hook, plug-in and outcome",
            decisions.clone(),
        );
        registry.register("decision_fuel", "Fuel used per decision", fuel.clone());
        registry.register(
            "decision_duration_seconds",
            "Wall time per decision, including instantiation",
            decision_latency.clone(),
        );
        registry.register(
            "rule_failures",
            "Plug-in failures by district, hook and kind",
            failures.clone(),
        );
        registry.register("cases", "Cases by district and status", cases.clone());
        let sweeps = Family::<OutcomeLabels, Counter>::default();
        let timers_fired = Counter::default();
        let timer_panics = Counter::default();
        let sweep_latency = Histogram::new(exponential_buckets(0.0002, 2.0, 16));
        registry.register(
            "timer_sweeps",
            "Background timer sweeps by outcome (ok, error or panic)",
            sweeps.clone(),
        );
        registry.register(
            "timers_fired",
            "Timers fired and consumed by the background sweeper",
            timers_fired.clone(),
        );
        registry.register(
            "timer_firing_panics",
            "Timers whose firing panicked in the host (left due; the sweep went on)",
            timer_panics.clone(),
        );
        registry.register(
            "timer_sweep_duration_seconds",
            "Wall time per background timer sweep",
            sweep_latency.clone(),
        );
        Self {
            sweeps,
            timers_fired,
            timer_panics,
            sweep_latency,
            registry,
            requests,
            latency,
            decisions,
            fuel,
            decision_latency,
            failures,
            cases,
        }
    }

    /// Counts a request. Methods outside HTTP's standard set count as `other`: a label per
    /// made-up method would let any client grow the exposition without bound.
    pub fn request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" => method,
            _ => "other",
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: route.into(),
                method: method.into(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts a decision.
    pub fn decision(
        &self,
        district: &str,
        hook: Hook,
        plugin: &str,
        outcome: &str,
        fuel: u64,
        took: Duration,
    ) {
        let hook_s = hook.as_str().to_owned();
        // Names are checked at deployment; one stored before that is not shown as is.
        let plugin = if crate::registry::check_name(plugin).is_ok() {
            plugin
        } else {
            "unnamed"
        };
        self.decisions
            .get_or_create(&DecisionLabels {
                district: district.into(),
                hook: hook_s.clone(),
                plugin: plugin.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.fuel
            .get_or_create(&HookLabels {
                hook: hook_s.clone(),
            })
            .observe(fuel as f64);
        self.decision_latency
            .get_or_create(&HookLabels { hook: hook_s })
            .observe(took.as_secs_f64());
    }

    /// Counts a plug-in failure.
    pub fn failure(&self, district: &str, hook: Hook, kind: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                district: district.into(),
                hook: hook.as_str().into(),
                kind: kind.into(),
            })
            .inc();
    }

    /// Counts a background timer sweep (`ok`, `error` or `panic`), the timers it fired and
    /// the timers whose firing panicked.
    pub fn sweep(&self, outcome: &'static str, fired: u64, panicked: u64, took: Duration) {
        self.sweeps
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
        self.timers_fired.inc_by(fired);
        self.timer_panics.inc_by(panicked);
        self.sweep_latency.observe(took.as_secs_f64());
    }

    /// Sets the cases-by-status gauge.
    pub fn set_cases(&self, district: &str, status: &str, n: i64) {
        self.cases
            .get_or_create(&StatusLabels {
                district: district.into(),
                status: status.into(),
            })
            .set(n);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a string");
        out
    }
}
