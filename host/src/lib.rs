//! civic-rules host: the case store, the plug-in runtime and the HTTP API.
#![deny(missing_docs)]
// Plug-in errors carry which plug-in failed and how (names, versions, messages); they are
// the rare path, and keeping them unboxed keeps every match on them simple.
#![allow(clippy::result_large_err)]

pub mod actions;
pub mod alloc;
pub mod api;
pub mod archiver;
pub mod assessment;
pub mod auth;
pub mod author;
pub mod backtest;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod deadlines;
pub mod decide;
pub mod directory;
pub mod dryrun;
pub mod follower;
pub mod fuzzing;
pub mod generation;
pub mod golden;
pub mod health;
pub mod intake;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod periodic;
pub mod registry;
pub mod replay;
pub mod runtime;
pub mod scaffold;
pub mod schema;
pub mod service;
pub mod store;
pub mod sweeper;
pub mod text;
pub mod timers;
pub mod views;
