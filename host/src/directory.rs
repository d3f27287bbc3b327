//! The unit directory and the category list: reference data, loaded once per version.
//!
//! Rules look units up on every decision, so a directory version is parsed and indexed
//! once (children by parent, the district of every unit) and then shared read-only.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Kinds of unit, as in the directory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// The city hotline centre.
    CityCentre,
    /// A district's dispatch desk.
    DistrictDesk,
    /// A community (社区).
    Community,
    /// A village (村).
    Village,
    /// A grid (网格).
    Grid,
    /// A functional department.
    Department,
    /// Police.
    Police,
    /// A people's mediation committee.
    MediationCommittee,
    /// An industry mediation organisation.
    IndustryMediation,
    /// A chamber-of-commerce mediation committee.
    ChamberMediation,
    /// The court's pre-litigation mediation centre.
    PreLitigationCentre,
    /// A fishing-port station.
    PortStation,
}

/// A unit cases are dispatched to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    /// Path-like id, such as `jiyang/yuehe/grid-01`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What kind of unit.
    pub kind: UnitKind,
    /// Parent unit id; `None` only for the city centre.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The function a department or police unit leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// A mediation committee's level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// An industry mediation body's dispute type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<String>,
    /// A chamber mediation body's chamber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chamber: Option<String>,
}

/// The directory file's shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectoryFile {
    /// The city's id (the root unit).
    pub city: String,
    /// Every unit.
    pub units: Vec<Unit>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A category (service code) and its reference data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    /// Service code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Default case kind.
    pub default_kind: String,
    /// On the city-wide grid admission list.
    pub grid_admissible: bool,
    /// Dispute type for mediation eligibility.
    pub dispute: Option<String>,
    /// Function of the department that leads.
    pub lead_function: Option<String>,
}

/// The categories file's shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CategoriesFile {
    /// Case kinds.
    pub kinds: Vec<String>,
    /// Service codes.
    pub categories: Vec<Category>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why reference data was refused.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// Not valid JSON of the expected shape.
    #[error("directory data is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    /// Structurally wrong.
    #[error("directory data is inconsistent: {0}")]
    Inconsistent(String),
}

/// One version of the directory and category list, indexed for look-ups.
#[derive(Debug)]
pub struct Directory {
    version: u64,
    city: String,
    units: HashMap<String, Arc<Unit>>,
    children: HashMap<String, Vec<Arc<Unit>>>,
    /// District of each unit (its district-desk ancestor); `None` for city-level units.
    district_of: HashMap<String, Option<String>>,
    categories: HashMap<String, Category>,
}

impl Directory {
    /// Parses and indexes a directory and a category list as version `version`.
    pub fn from_json(
        version: u64,
        directory: &str,
        categories: &str,
    ) -> Result<Self, DirectoryError> {
        let d: DirectoryFile = serde_json::from_str(directory)?;
        let c: CategoriesFile = serde_json::from_str(categories)?;
        Self::new(version, d, c)
    }

    /// Indexes parsed files, checking that ids are unique and every parent exists.
    pub fn new(version: u64, d: DirectoryFile, c: CategoriesFile) -> Result<Self, DirectoryError> {
        let mut units = HashMap::new();
        for u in d.units {
            let id = u.id.clone();
            if units.insert(id.clone(), Arc::new(u)).is_some() {
                return Err(DirectoryError::Inconsistent(format!(
                    "unit id {id} appears twice"
                )));
            }
        }
        if !units.contains_key(&d.city) {
            return Err(DirectoryError::Inconsistent(format!(
                "city root {} is not a unit",
                d.city
            )));
        }
        let mut children: HashMap<String, Vec<Arc<Unit>>> = HashMap::new();
        for u in units.values() {
            if let Some(p) = &u.parent {
                if !units.contains_key(p) {
                    return Err(DirectoryError::Inconsistent(format!(
                        "unit {} has unknown parent {p}",
                        u.id
                    )));
                }
                children.entry(p.clone()).or_default().push(u.clone());
            }
        }
        for list in children.values_mut() {
            list.sort_by(|a, b| a.id.cmp(&b.id));
        }
        let mut district_of = HashMap::new();
        for id in units.keys() {
            let mut cur = &units[id];
            let mut steps = 0;
            let district = loop {
                if cur.kind == UnitKind::DistrictDesk {
                    break Some(cur.id.clone());
                }
                match cur.parent.as_ref().and_then(|p| units.get(p)) {
                    Some(p) if steps < units.len() => {
                        cur = p;
                        steps += 1;
                    }
                    Some(_) => {
                        return Err(DirectoryError::Inconsistent(format!(
                            "unit {id} is in a parent cycle"
                        )));
                    }
                    None => break None,
                }
            };
            district_of.insert(id.clone(), district);
        }
        let categories = c
            .categories
            .into_iter()
            .map(|c| (c.code.clone(), c))
            .collect();
        Ok(Self {
            version,
            city: d.city,
            units,
            children,
            district_of,
            categories,
        })
    }

    /// This directory's version; decisions record it.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The city root's id.
    pub fn city(&self) -> &str {
        &self.city
    }

    /// A unit by id, regardless of district.
    pub fn unit(&self, id: &str) -> Option<&Arc<Unit>> {
        self.units.get(id)
    }

    /// All units.
    pub fn units(&self) -> impl Iterator<Item = &Arc<Unit>> {
        self.units.values()
    }

    /// The district ids (district desks).
    pub fn districts(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .units
            .values()
            .filter(|u| u.kind == UnitKind::DistrictDesk)
            .map(|u| u.id.clone())
            .collect();
        v.sort();
        v
    }

    /// Whether `id` is a district.
    pub fn is_district(&self, id: &str) -> bool {
        self.units
            .get(id)
            .is_some_and(|u| u.kind == UnitKind::DistrictDesk)
    }

    /// The district a unit belongs to; `None` for city-level units and unknown ids.
    pub fn district_of(&self, id: &str) -> Option<&str> {
        self.district_of.get(id)?.as_deref()
    }

    /// Whether a unit exists and is visible to a case of `district`: a unit of that
    /// district, or a city-level unit.
    pub fn visible(&self, id: &str, district: &str) -> bool {
        match self.district_of.get(id) {
            Some(Some(d)) => d == district,
            Some(None) => true,
            None => false,
        }
    }

    /// Visible direct children of `parent`, optionally of one kind.
    pub fn children<'a>(
        &'a self,
        parent: &str,
        kind: Option<UnitKind>,
        district: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Unit>> + 'a {
        self.children
            .get(parent)
            .into_iter()
            .flatten()
            .filter(move |u| kind.is_none_or(|k| u.kind == k) && self.visible(&u.id, district))
    }

    /// Ids from the root down to `id`, inclusive; empty if not visible.
    pub fn path(&self, id: &str, district: &str) -> Vec<String> {
        if !self.visible(id, district) {
            return Vec::new();
        }
        let mut path = vec![id.to_owned()];
        let mut cur = &self.units[id];
        while let Some(p) = cur.parent.as_ref().and_then(|p| self.units.get(p)) {
            path.push(p.id.clone());
            cur = p;
        }
        path.reverse();
        path
    }

    /// A category by service code.
    pub fn category(&self, code: &str) -> Option<&Category> {
        self.categories.get(code)
    }

    /// All categories, sorted by code.
    pub fn categories(&self) -> Vec<&Category> {
        let mut v: Vec<&Category> = self.categories.values().collect();
        v.sort_by(|a, b| a.code.cmp(&b.code));
        v
    }
}

/// The sample city's directory, bundled into the binary.
pub const SAMPLE_DIRECTORY: &str = include_str!("../../data/sanya-directory.json");
/// The sample city's category list, bundled into the binary.
pub const SAMPLE_CATEGORIES: &str = include_str!("../../data/categories.json");

/// The sample city's reference data as version 1.
pub fn sample_city() -> Directory {
    Directory::from_json(1, SAMPLE_DIRECTORY, SAMPLE_CATEGORIES)
        .expect("bundled sample data is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_city_indexes_districts_and_visibility() {
        let d = sample_city();
        assert_eq!(
            d.districts(),
            ["haitang", "jiyang", "tianya", "yazhou", "yucai"]
        );
        assert_eq!(d.district_of("jiyang/yuehe/grid-01"), Some("jiyang"));
        assert_eq!(d.district_of("sanya/mediation/industry/labour"), None);
        assert!(d.visible("sanya/mediation/industry/labour", "jiyang"));
        assert!(!d.visible("tianya/dept/urban", "jiyang"));
        assert!(!d.visible("nowhere", "jiyang"));
        assert_eq!(
            d.path("jiyang/yuehe/grid-01", "jiyang"),
            ["sanya", "jiyang", "jiyang/yuehe", "jiyang/yuehe/grid-01"]
        );
        assert!(d.path("jiyang/yuehe/grid-01", "tianya").is_empty());
        let grids: Vec<_> = d
            .children("jiyang/yuehe", Some(UnitKind::Grid), "jiyang")
            .map(|u| u.id.as_str())
            .collect();
        assert_eq!(grids, ["jiyang/yuehe/grid-01", "jiyang/yuehe/grid-02"]);
        assert_eq!(d.children("jiyang/yuehe", None, "tianya").count(), 0);
        assert!(d.category("noise").unwrap().grid_admissible);
    }

    #[test]
    fn inconsistent_directories_are_refused() {
        let dup = r#"{"city":"c","units":[{"id":"c","name":"C","kind":"city_centre"},{"id":"c","name":"C","kind":"city_centre"}]}"#;
        let cats = r#"{"kinds":[],"categories":[]}"#;
        assert!(
            matches!(Directory::from_json(1, dup, cats), Err(DirectoryError::Inconsistent(m)) if m.contains("twice"))
        );
        let orphan = r#"{"city":"c","units":[{"id":"c","name":"C","kind":"city_centre"},{"id":"x","name":"X","kind":"grid","parent":"nope"}]}"#;
        assert!(
            matches!(Directory::from_json(1, orphan, cats), Err(DirectoryError::Inconsistent(m)) if m.contains("unknown parent nope"))
        );
        assert!(matches!(
            Directory::from_json(1, "{", cats),
            Err(DirectoryError::Parse(_))
        ));
        let bad_kind = r#"{"city":"c","units":[{"id":"c","name":"C","kind":"castle"}]}"#;
        assert!(matches!(
            Directory::from_json(1, bad_kind, cats),
            Err(DirectoryError::Parse(_))
        ));
    }
}
