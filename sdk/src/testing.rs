//! Native testing helpers: case builders and an in-memory directory, so rules are
//! unit-tested with `cargo test` without building Wasm.
//!
//! A [`Sandbox`] holds the directory and category list (the same JSON files the host
//! loads) and runs a [`Rules`] hook the way the host does: look-ups are scoped to the
//! case's district, and the context carries the case's category.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;

use crate::directory::Lookup;
use crate::{
    Case, CaseFlags, CaseKind, CaseStatus, CategoryInfo, Channel, Context, Dispute,
    EligibilityDecision, EligibilityOutcome, EscalationDecision, Location, RecentCase,
    RoutingDecision, RuleResult, Rules, Timer, TimerKind, Timestamp, Unit, UnitKind, Urgency,
};

thread_local! {
    static INSTALLED: RefCell<Option<(Rc<Directory>, String)>> = const { RefCell::new(None) };
}

pub(crate) fn with_installed<R>(f: impl FnOnce(&dyn Lookup) -> R) -> R {
    INSTALLED.with(|slot| {
        let slot = slot.borrow();
        let (dir, district) = slot
            .as_ref()
            .expect("no directory installed: run the hook through testing::Sandbox");
        f(&Scoped { dir, district })
    })
}

/// An in-memory unit directory, read from the host's directory JSON format.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    units: BTreeMap<String, Unit>,
}

impl Directory {
    /// Parses `{"units": [{"id", "name", "kind", "parent"?, "function"?, ...}]}`.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(json).map_err(|e| format!("directory json: {e}"))?;
        let units = v["units"]
            .as_array()
            .ok_or("directory json: no `units` array")?;
        let mut dir = Directory::default();
        for u in units {
            let s = |k: &str| u[k].as_str().map(str::to_owned);
            let id = s("id").ok_or("directory json: a unit has no id")?;
            let kind = unit_kind(u["kind"].as_str().unwrap_or_default())
                .ok_or_else(|| format!("directory json: unit {id} has an unknown kind"))?;
            dir.units.insert(
                id.clone(),
                Unit {
                    name: s("name").unwrap_or_default(),
                    kind,
                    parent: s("parent"),
                    function: s("function"),
                    level: s("level"),
                    dispute: s("dispute"),
                    chamber: s("chamber"),
                    id,
                },
            );
        }
        Ok(dir)
    }

    /// The district a unit belongs to (the id of its `district-desk` ancestor), or
    /// `None` for city-level units.
    pub fn district_of(&self, id: &str) -> Option<&str> {
        let mut cur = self.units.get(id)?;
        loop {
            if cur.kind == UnitKind::DistrictDesk {
                return Some(&cur.id);
            }
            cur = self.units.get(cur.parent.as_deref()?)?;
        }
    }

    fn visible(&self, id: &str, district: &str) -> bool {
        self.units.contains_key(id) && self.district_of(id).is_none_or(|d| d == district)
    }
}

struct Scoped<'a> {
    dir: &'a Directory,
    district: &'a str,
}

impl Lookup for Scoped<'_> {
    fn unit(&self, id: &str) -> Option<Unit> {
        self.dir
            .visible(id, self.district)
            .then(|| self.dir.units[id].clone())
    }

    fn children(&self, parent: &str, kind: Option<UnitKind>) -> Vec<Unit> {
        self.dir
            .units
            .values()
            .filter(|u| u.parent.as_deref() == Some(parent))
            .filter(|u| kind.is_none_or(|k| u.kind == k))
            .filter(|u| self.dir.visible(&u.id, self.district))
            .cloned()
            .collect()
    }

    fn path(&self, id: &str) -> Vec<String> {
        if !self.dir.visible(id, self.district) {
            return Vec::new();
        }
        let mut path = vec![id.to_owned()];
        let mut cur = &self.dir.units[id];
        while let Some(p) = cur.parent.as_deref().and_then(|p| self.dir.units.get(p)) {
            path.push(p.id.clone());
            cur = p;
        }
        path.reverse();
        path
    }
}

fn unit_kind(s: &str) -> Option<UnitKind> {
    Some(match s {
        "city_centre" => UnitKind::CityCentre,
        "district_desk" => UnitKind::DistrictDesk,
        "community" => UnitKind::Community,
        "village" => UnitKind::Village,
        "grid" => UnitKind::Grid,
        "department" => UnitKind::Department,
        "police" => UnitKind::Police,
        "mediation_committee" => UnitKind::MediationCommittee,
        "industry_mediation" => UnitKind::IndustryMediation,
        "chamber_mediation" => UnitKind::ChamberMediation,
        "pre_litigation_centre" => UnitKind::PreLitigationCentre,
        "port_station" => UnitKind::PortStation,
        _ => return None,
    })
}

fn case_kind(s: &str) -> Option<CaseKind> {
    Some(match s {
        "consultation" => CaseKind::Consultation,
        "help" => CaseKind::Help,
        "complaint" => CaseKind::Complaint,
        "report" => CaseKind::Report,
        "suggestion" => CaseKind::Suggestion,
        "praise" => CaseKind::Praise,
        _ => return None,
    })
}

/// The category list, read from the host's categories JSON format.
#[derive(Debug, Clone, Default)]
pub struct Categories {
    by_code: BTreeMap<String, CategoryInfo>,
}

impl Categories {
    /// Parses `{"categories": [{"code", "name", "default_kind", "grid_admissible", ...}]}`.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(json).map_err(|e| format!("categories json: {e}"))?;
        let list = v["categories"]
            .as_array()
            .ok_or("categories json: no `categories` array")?;
        let mut by_code = BTreeMap::new();
        for c in list {
            let code = c["code"]
                .as_str()
                .ok_or("categories json: a category has no code")?;
            let info = CategoryInfo {
                code: code.to_owned(),
                name: c["name"].as_str().unwrap_or_default().to_owned(),
                default_kind: case_kind(c["default_kind"].as_str().unwrap_or_default())
                    .ok_or_else(|| format!("categories json: {code} has an unknown kind"))?,
                grid_admissible: c["grid_admissible"].as_bool().unwrap_or(false),
                dispute: c["dispute"].as_str().map(str::to_owned),
                lead_function: c["lead_function"].as_str().map(str::to_owned),
            };
            by_code.insert(code.to_owned(), info);
        }
        Ok(Self { by_code })
    }

    /// A category by service code.
    pub fn get(&self, code: &str) -> Option<&CategoryInfo> {
        self.by_code.get(code)
    }
}

/// Runs hooks natively the way the host runs them in Wasm.
#[derive(Debug, Clone)]
pub struct Sandbox {
    directory: Rc<Directory>,
    categories: Categories,
    /// Evaluation time given to rules (default: the case's creation time).
    pub now: Option<Timestamp>,
    /// The plug-in configuration given to rules.
    pub config: String,
    /// The caller's recent cases given to rules.
    pub recent_cases: Vec<RecentCase>,
}

impl Sandbox {
    /// A sandbox over a directory and a category list.
    pub fn new(directory: Directory, categories: Categories) -> Self {
        Self {
            directory: Rc::new(directory),
            categories,
            now: None,
            config: "{}".into(),
            recent_cases: Vec::new(),
        }
    }

    /// A sandbox from the directory and categories JSON files.
    pub fn from_json(directory: &str, categories: &str) -> Result<Self, String> {
        Ok(Self::new(
            Directory::from_json(directory)?,
            Categories::from_json(categories)?,
        ))
    }

    /// The directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The category list.
    pub fn categories(&self) -> &Categories {
        &self.categories
    }

    /// The context the host would give a hook for `case`.
    pub fn context(&self, case: &Case) -> Context {
        Context {
            now: self.now.unwrap_or(case.created_at),
            directory_version: 1,
            category: self.categories.get(&case.category).cloned(),
            recent_cases: self.recent_cases.clone(),
            config: self.config.clone(),
        }
    }

    fn scoped<R>(&self, case: &Case, f: impl FnOnce(&Context) -> R) -> R {
        let ctx = self.context(case);
        INSTALLED.with(|s| *s.borrow_mut() = Some((self.directory.clone(), case.district.clone())));
        let out = f(&ctx);
        INSTALLED.with(|s| *s.borrow_mut() = None);
        out
    }

    /// Runs `R`'s eligibility hook on `case`.
    pub fn eligibility<R: Rules>(&self, case: &Case) -> RuleResult<EligibilityDecision> {
        self.scoped(case, |ctx| R::eligibility(case, ctx))
    }

    /// Runs `R`'s routing hook on `case`.
    pub fn routing<R: Rules>(&self, case: &Case) -> RuleResult<RoutingDecision> {
        self.scoped(case, |ctx| R::routing(case, ctx))
    }

    /// Runs `R`'s escalation hook on `case` for `timer`.
    pub fn escalation<R: Rules>(
        &self,
        case: &Case,
        timer: &Timer,
    ) -> RuleResult<EscalationDecision> {
        self.scoped(case, |ctx| R::escalation(case, timer, ctx))
    }

    /// Runs eligibility, stores its outcome on the case as the host does, then routing.
    pub fn intake<R: Rules>(
        &self,
        case: &mut Case,
    ) -> Result<(Option<EligibilityDecision>, Option<RoutingDecision>), crate::RuleError> {
        let eligibility = self.eligibility::<R>(case)?;
        if let Some(e) = &eligibility {
            if !e.is_admissible() {
                return Ok((eligibility, None));
            }
            case.eligibility = Some(EligibilityOutcome {
                grid_admissible: e.grid_admissible,
                mediation: e.mediation.clone(),
            });
        }
        let routing = self.routing::<R>(case)?;
        Ok((eligibility, routing))
    }
}

/// Starts a case in `district` with service code `category`.
pub fn case(district: &str, category: &str) -> CaseBuilder {
    CaseBuilder(Case {
        id: "test-case-1".into(),
        district: district.into(),
        category: category.into(),
        kind: CaseKind::Complaint,
        channel: Channel::Phone,
        urgency: Urgency::Normal,
        location: Location {
            community: None,
            grid: None,
            lat: None,
            lon: None,
        },
        caller_key: "caller-test".into(),
        flags: CaseFlags::empty(),
        dispute: None,
        status: CaseStatus::Received,
        eligibility: None,
        handler: None,
        co_handlers: Vec::new(),
        returned_by: Vec::new(),
        escalation_level: 0,
        reopen_count: 0,
        // 2026-11-30T09:00:00+08:00, a Monday.
        created_at: 1_796_000_400_000,
        updated_at: 1_796_000_400_000,
    })
}

/// Builds a [`Case`] for a test.
#[derive(Debug, Clone)]
pub struct CaseBuilder(Case);

impl CaseBuilder {
    /// Sets the id.
    pub fn id(mut self, id: &str) -> Self {
        self.0.id = id.into();
        self
    }
    /// Sets the kind.
    pub fn kind(mut self, kind: CaseKind) -> Self {
        self.0.kind = kind;
        self
    }
    /// Marks the case urgent.
    pub fn urgent(mut self) -> Self {
        self.0.urgency = Urgency::Urgent;
        self
    }
    /// Locates the case in a grid; the community is the grid's parent id.
    pub fn grid(mut self, grid: &str) -> Self {
        let community = grid.rsplit_once('/').map(|(c, _)| c.to_owned());
        self.0.location.grid = Some(grid.into());
        self.0.location.community = community;
        self
    }
    /// Locates the case in a community without a grid.
    pub fn community(mut self, community: &str) -> Self {
        self.0.location.community = Some(community.into());
        self.0.location.grid = None;
        self
    }
    /// Adds flags.
    pub fn flags(mut self, flags: CaseFlags) -> Self {
        self.0.flags |= flags;
        self
    }
    /// Sets dispute details.
    pub fn dispute(
        mut self,
        dispute_type: &str,
        amount: Option<u64>,
        chambers: &[Option<&str>],
    ) -> Self {
        self.0.dispute = Some(Dispute {
            dispute_type: dispute_type.into(),
            amount,
            party_chambers: chambers.iter().map(|c| c.map(str::to_owned)).collect(),
        });
        self
    }
    /// Sets the current handler and status `dispatched`.
    pub fn handled_by(mut self, unit: &str) -> Self {
        self.0.handler = Some(unit.into());
        self.0.status = CaseStatus::Dispatched;
        self
    }
    /// Records a return (退单) by `unit`.
    pub fn returned_by(mut self, unit: &str) -> Self {
        self.0.returned_by.push(unit.into());
        self
    }
    /// Sets the status.
    pub fn status(mut self, status: CaseStatus) -> Self {
        self.0.status = status;
        self
    }
    /// Sets the stored eligibility outcome.
    pub fn eligibility(mut self, outcome: EligibilityOutcome) -> Self {
        self.0.eligibility = Some(outcome);
        self
    }
    /// Sets the creation time.
    pub fn created_at(mut self, at: Timestamp) -> Self {
        self.0.created_at = at;
        self.0.updated_at = at;
        self
    }
    /// Sets the caller key.
    pub fn caller(mut self, key: &str) -> Self {
        self.0.caller_key = key.into();
        self
    }
    /// The case.
    pub fn build(self) -> Case {
        self.0
    }
}

/// A fired timer of `kind`, due at `due_at`, `overdue` working days late.
pub fn timer(kind: TimerKind, due_at: Timestamp, overdue: u32) -> Timer {
    Timer {
        kind,
        due_at,
        working_days_overdue: overdue,
    }
}
