//! Read-only look-ups in the unit directory.
//!
//! The host scopes every look-up to the case's district and the city-level units: a unit
//! of another district looks as if it did not exist. Inside Wasm these call the host;
//! natively (unit tests) they read the directory installed by [`crate::testing`].

use crate::{Unit, UnitKind};

/// A unit by id; `None` if it does not exist or belongs to another district.
pub fn unit(id: &str) -> Option<Unit> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::__private::wit::civic::rules::directory::lookup(id)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        native::with(|d| d.unit(id))
    }
}

/// The direct children of a unit, optionally only those of one kind.
pub fn children(parent: &str, kind: Option<UnitKind>) -> Vec<Unit> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::__private::wit::civic::rules::directory::children(parent, kind)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        native::with(|d| d.children(parent, kind))
    }
}

/// Ids from the city root down to the unit, inclusive; empty if the unit is not visible.
pub fn path(id: &str) -> Vec<String> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::__private::wit::civic::rules::directory::path(id)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        native::with(|d| d.path(id))
    }
}

/// The parent of a unit, if the unit is visible and has one.
pub fn parent(id: &str) -> Option<String> {
    unit(id).and_then(|u| u.parent)
}

/// The first child of `parent` of `kind` whose `function` is `function`
/// (for example the district department that leads `urban_management`).
pub fn child_with_function(parent: &str, kind: UnitKind, function: &str) -> Option<Unit> {
    children(parent, Some(kind))
        .into_iter()
        .find(|u| u.function.as_deref() == Some(function))
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    /// The look-ups a native test directory answers.
    pub trait Lookup {
        fn unit(&self, id: &str) -> Option<crate::Unit>;
        fn children(&self, parent: &str, kind: Option<crate::UnitKind>) -> Vec<crate::Unit>;
        fn path(&self, id: &str) -> Vec<String>;
    }

    #[cfg(feature = "testing")]
    pub fn with<R>(f: impl FnOnce(&dyn Lookup) -> R) -> R {
        crate::testing::with_installed(|d| f(d))
    }

    #[cfg(not(feature = "testing"))]
    pub fn with<R>(_f: impl FnOnce(&dyn Lookup) -> R) -> R {
        panic!(
            "directory look-ups outside Wasm need the sdk's `testing` feature and a \
             `testing::Sandbox` to answer them"
        )
    }
}

#[cfg(all(not(target_arch = "wasm32"), feature = "testing"))]
pub(crate) use native::Lookup;
