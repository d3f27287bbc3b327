//! The year benchmark's driver, run small: the figures it prints must agree with each other
//! and with a full count of the cases (their speed is the bench's business, not a test's).

use civic_host::service::ServiceConfig;
use civic_tests::year::{Plan, run};

#[test]
fn a_small_year_prints_figures_that_agree_with_a_full_count() {
    let dir = tempfile::tempdir().unwrap();
    check(&ServiceConfig::new(dir.path()));
}

/// The same on PostgreSQL, whose counts come from queries and walks rather than kept counts.
#[test]
fn a_small_year_on_postgres_agrees_with_a_full_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServiceConfig::new(dir.path());
    let url = civic_tests::postgres::Postgres::shared().fresh_database();
    config.store = civic_host::store::StoreConfig::parse(&url).unwrap();
    check(&config);
}

fn check(config: &ServiceConfig) {
    let plan = Plan {
        cases: 2_000,
        days: 40,
        handled_of_ten: 8,
    };
    let f = run(&plan, config, &mut |_| {});
    assert_eq!(f.cases, 2_000, "{f:?}");
    assert_eq!(
        f.all_by_metrics, f.cases,
        "/metrics counts every case: {f:?}"
    );
    assert_eq!(
        f.jiyang_open_by_overview, f.jiyang_open_by_walk,
        "the overview's open cases are the walk's: {f:?}"
    );
    assert!(
        f.jiyang_open_by_walk > 0 && f.open_by_metrics >= f.jiyang_open_by_walk,
        "{f:?}"
    );
    assert!(f.open_by_metrics < f.cases, "most cases were closed: {f:?}");
    assert_eq!(f.jiyang_warnings, f.jiyang_alerts_by_walk, "{f:?}");
    assert!(
        f.jiyang_overdue <= f.jiyang_warnings && f.jiyang_overdue > 0,
        "{f:?}"
    );
    assert!(f.fired > 0 && f.actions > 0, "{f:?}");
    assert!(
        f.overview_decisions > 0,
        "the last week's decisions are counted: {f:?}"
    );
    assert!(f.assessment_dispatched > 0, "{f:?}");
    assert!(
        f.assessment_kept_same,
        "a month answered again from the kept day counts is the same: {f:?}"
    );
    assert!(f.days_kept > 0 && f.days_kept_again == 0, "{f:?}");
    assert_eq!(
        Some(f.assessment_dispatched),
        f.dispatched_by_walk,
        "the assessment's dispatches are the histories': {f:?}"
    );
    if config.store.describe().starts_with("sled:") {
        assert!(f.bytes_per_case > 0 && f.disk_bytes > 0, "{f:?}");
    }
}
