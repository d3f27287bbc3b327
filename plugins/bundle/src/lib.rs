//! The bundled plug-ins of the sample city, built from source by this crate's build script.
//!
//! `civic serve` deploys them into an empty store: [`CITY_DEFAULT`] for every hook of the
//! city, and one set per district.
#![deny(missing_docs)]

mod generated {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}
pub use generated::*;

/// The package name of the city default plug-in.
pub const CITY_DEFAULT: &str = "civic-plugin-city-default";

/// A bundled plug-in: package name, the district it is for (`None` for the city
/// default), and its component bytes.
#[derive(Debug, Clone, Copy)]
pub struct Bundled {
    /// The crate it was built from.
    pub package: &'static str,
    /// The district it serves, or `None` for the city default.
    pub district: Option<&'static str>,
    /// The component.
    pub component: &'static [u8],
}

/// Every bundled plug-in.
pub fn all() -> Vec<Bundled> {
    GUEST_BYTES
        .iter()
        .map(|(package, component)| Bundled {
            package,
            district: package
                .strip_prefix("civic-plugin-")
                .filter(|d| *d != "city-default"),
            component,
        })
        .collect()
}

/// The bundled plug-in built from `package`.
pub fn get(package: &str) -> Option<Bundled> {
    all().into_iter().find(|b| b.package == package)
}
