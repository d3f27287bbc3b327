//! civic-rules host: the case store, the plug-in runtime and the HTTP API.
#![deny(missing_docs)]

pub mod calendar;
pub mod deadlines;
pub mod directory;
pub mod lifecycle;
pub mod model;
pub mod runtime;
pub mod store;
