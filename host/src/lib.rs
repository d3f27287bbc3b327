//! civic-rules host: the case store, the plug-in runtime and the HTTP API.
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod calendar;
pub mod cli;
pub mod deadlines;
pub mod directory;
pub mod intake;
pub mod clock;
pub mod decide;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod registry;
pub mod runtime;
pub mod service;
pub mod store;
