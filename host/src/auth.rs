//! Bearer tokens, roles and the district scope every route goes through.
//!
//! A token is `civic_<id>_<secret>`; only the sha256 of the secret is stored, and it is
//! compared in constant time. Roles: city admin (everything), district admin (its
//! district's cases, plug-ins and tokens), dispatcher (its district's cases), unit handler
//! (the cases its unit handles), intake agent (creates cases, reads those it created).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::{Case, Millis};
use crate::store::{CaseStore, StoreError};

const TOKENS: &str = "tokens";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything.
    CityAdmin,
    /// Its district's cases, plug-ins and tokens.
    DistrictAdmin,
    /// Its district's cases.
    Dispatcher,
    /// The cases its unit handles.
    UnitHandler,
    /// Creates cases; reads those it created.
    IntakeAgent,
}

/// A stored token (without its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// Public id (also the actor id recorded in histories).
    pub id: String,
    /// A label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// District scope (required for district admins, dispatchers and unit handlers).
    pub district: Option<String>,
    /// Unit (unit handlers).
    pub unit: Option<String>,
    /// sha256 of the secret.
    pub secret_sha256: String,
    /// Who issued it.
    pub created_by: String,
    /// When.
    pub created_at: Millis,
    /// Revoked tokens authenticate nothing.
    pub revoked: bool,
    /// After this a token authenticates nothing (tokens stored before expiry existed have
    /// none).
    #[serde(default)]
    pub expires_at: Option<Millis>,
}

/// A token as the API shows it: everything but the hash of its secret.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Public id.
    pub id: String,
    /// A label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// District scope.
    pub district: Option<String>,
    /// Unit.
    pub unit: Option<String>,
    /// Who issued it.
    pub created_by: String,
    /// When.
    pub created_at: Millis,
    /// Revoked.
    pub revoked: bool,
    /// When it stops working.
    pub expires_at: Option<Millis>,
}

impl From<&Token> for TokenInfo {
    fn from(t: &Token) -> Self {
        TokenInfo {
            id: t.id.clone(),
            name: t.name.clone(),
            role: t.role,
            district: t.district.clone(),
            unit: t.unit.clone(),
            created_by: t.created_by.clone(),
            created_at: t.created_at,
            revoked: t.revoked,
            expires_at: t.expires_at,
        }
    }
}

/// How long a token lasts unless asked otherwise.
pub const DEFAULT_LIFETIME_DAYS: u32 = 365;
/// The longest lifetime a token may be given.
pub const MAX_LIFETIME_DAYS: u32 = 3650;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// Token id.
    pub id: String,
    /// Role.
    pub role: Role,
    /// District scope.
    pub district: Option<String>,
    /// Unit.
    pub unit: Option<String>,
}

/// Why authentication or issuing failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No usable bearer token.
    #[error("a valid bearer token is required")]
    Unauthenticated,
    /// The token may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request is wrong.
    #[error("{0}")]
    Invalid(String),
    /// Revoking it would leave no one able to administer the city.
    #[error(
        "this is the last city admin token; issue another city admin first (or, with access to the server's data, `civic admin token --data DIR`)"
    )]
    LastAdmin,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the operating system provides randomness");
    hex::encode(b)
}

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// What a new token should be.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// District scope.
    #[serde(default)]
    pub district: Option<String>,
    /// Unit (unit handlers).
    #[serde(default)]
    pub unit: Option<String>,
    /// Days until it expires (default 365, at most 3650).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// Issues a token; returns it and the full token string, shown once.
pub fn issue(
    store: &dyn CaseStore,
    issuer: Option<&Principal>,
    new: &NewToken,
    now: Millis,
) -> Result<(Token, String), AuthError> {
    if new.name.trim().is_empty() || new.name.len() > 100 {
        return Err(AuthError::Invalid(
            "the token name must be 1-100 bytes".into(),
        ));
    }
    crate::text::check("the token name", &new.name, 100)
        .map_err(|e| AuthError::Invalid(e.to_string()))?;
    let days = new.expires_in_days.unwrap_or(DEFAULT_LIFETIME_DAYS);
    if !(1..=MAX_LIFETIME_DAYS).contains(&days) {
        return Err(AuthError::Invalid(format!(
            "expires_in_days must be 1-{MAX_LIFETIME_DAYS}"
        )));
    }
    match (new.role, &new.district, &new.unit) {
        (Role::CityAdmin, None, None) | (Role::IntakeAgent, _, None) => {}
        (Role::DistrictAdmin | Role::Dispatcher, Some(_), None)
        | (Role::UnitHandler, Some(_), Some(_)) => {}
        _ => {
            return Err(AuthError::Invalid(
                "district admins and dispatchers need a district; unit handlers a district and a unit; city admins neither".into(),
            ));
        }
    }
    if let Some(p) = issuer {
        let allowed = match p.role {
            Role::CityAdmin => true,
            Role::DistrictAdmin => {
                new.role != Role::CityAdmin && new.district.is_some() && new.district == p.district
            }
            _ => false,
        };
        if !allowed {
            return Err(AuthError::Forbidden(
                "this token may not issue that token".into(),
            ));
        }
    }
    let id = format!("t{}", random_hex(6));
    let secret = random_hex(16);
    let token = Token {
        id: id.clone(),
        name: new.name.clone(),
        role: new.role,
        district: new.district.clone(),
        unit: new.unit.clone(),
        secret_sha256: sha(&secret),
        created_by: issuer
            .map(|p| p.id.clone())
            .unwrap_or_else(|| "system".into()),
        created_at: now,
        revoked: false,
        expires_at: Some(now + i64::from(days) * 86_400_000),
    };
    store.record_put(
        TOKENS,
        &[(id.clone(), serde_json::to_vec(&token).expect("serializes"))],
    )?;
    Ok((token, format!("civic_{id}_{secret}")))
}

/// Stored tokens, cached in memory after first use (every request authenticates); a
/// revocation on any host empties every host's cache (see [`crate::generation`]).
#[derive(Debug, Default)]
pub struct Tokens {
    cache: parking_lot::RwLock<std::collections::HashMap<String, Token>>,
}

impl Tokens {
    /// The principal a bearer token string stands for at `now`.
    pub fn authenticate(
        &self,
        store: &dyn CaseStore,
        bearer: &str,
        now: Millis,
    ) -> Result<Principal, AuthError> {
        let rest = bearer
            .strip_prefix("civic_")
            .ok_or(AuthError::Unauthenticated)?;
        let (id, secret) = rest.split_once('_').ok_or(AuthError::Unauthenticated)?;
        if id.len() > 32 || secret.len() > 64 {
            return Err(AuthError::Unauthenticated);
        }
        let cached = self.cache.read().get(id).cloned();
        let token = match cached {
            Some(t) => t,
            None => {
                let t = authenticate_stored(store, id)?;
                self.cache.write().insert(id.to_owned(), t.clone());
                t
            }
        };
        check(&token, secret, now)
    }

    /// Revokes a token the principal manages; a token it may not see is "not found".
    pub fn revoke(
        &self,
        store: &dyn CaseStore,
        p: &Principal,
        id: &str,
    ) -> Result<bool, AuthError> {
        let found = revoke(store, p, id)?;
        self.cache.write().remove(id);
        if found {
            crate::generation::bump(store, crate::generation::Cached::Tokens)?;
        }
        Ok(found)
    }

    /// Forgets every cached token, so each is read from the store again at its next use:
    /// another host revoked one.
    pub fn forget_all(&self) {
        self.cache.write().clear();
    }
}

/// Who a token is, as a history shows its actor: its name and role (the id stays the
/// record's; a revoked token still names who acted).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Actor {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// The actors among `ids` that are tokens in the store (other actors — plug-ins, the
/// sweep — and unknown ids are left out).
pub fn actors<'a>(
    store: &dyn CaseStore,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<std::collections::BTreeMap<String, Actor>, AuthError> {
    let mut out = std::collections::BTreeMap::new();
    for id in ids {
        if out.contains_key(id) {
            continue;
        }
        if let Some(bytes) = store.record_get(TOKENS, id)?
            && let Ok(t) = serde_json::from_slice::<Token>(&bytes)
        {
            out.insert(
                id.to_owned(),
                Actor {
                    name: t.name,
                    role: t.role,
                },
            );
        }
    }
    Ok(out)
}

fn authenticate_stored(store: &dyn CaseStore, id: &str) -> Result<Token, AuthError> {
    let bytes = store
        .record_get(TOKENS, id)?
        .ok_or(AuthError::Unauthenticated)?;
    Ok(
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            key: format!("token {id}"),
            message: e.to_string(),
        })?,
    )
}

fn check(token: &Token, secret: &str, now: Millis) -> Result<Principal, AuthError> {
    let good: bool = sha(secret)
        .as_bytes()
        .ct_eq(token.secret_sha256.as_bytes())
        .into();
    if !good || token.revoked || token.expires_at.is_some_and(|e| now >= e) {
        return Err(AuthError::Unauthenticated);
    }
    Ok(Principal {
        id: token.id.clone(),
        role: token.role,
        district: token.district.clone(),
        unit: token.unit.clone(),
    })
}

/// The principal a bearer token string stands for at `now`, read from the store.
pub fn authenticate(
    store: &dyn CaseStore,
    bearer: &str,
    now: Millis,
) -> Result<Principal, AuthError> {
    Tokens::default().authenticate(store, bearer, now)
}

/// Tokens the principal may see (its district's, or all for a city admin).
pub fn list(store: &dyn CaseStore, p: &Principal) -> Result<Vec<Token>, AuthError> {
    Ok(all(store)?
        .into_iter()
        .filter(|t| {
            p.role == Role::CityAdmin || (p.role == Role::DistrictAdmin && t.district == p.district)
        })
        .collect())
}

fn all(store: &dyn CaseStore) -> Result<Vec<Token>, AuthError> {
    Ok(store
        .record_scan(TOKENS, "")?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
        .collect())
}

/// Revokes a token in the store (callers holding a [`Tokens`] cache use [`Tokens::revoke`]).
fn revoke(store: &dyn CaseStore, p: &Principal, id: &str) -> Result<bool, AuthError> {
    let visible = list(store, p)?.into_iter().any(|t| t.id == id);
    if !visible {
        return Ok(false);
    }
    let admins: Vec<Token> = all(store)?
        .into_iter()
        .filter(|t| t.role == Role::CityAdmin && !t.revoked)
        .collect();
    if admins.len() == 1 && admins[0].id == id {
        return Err(AuthError::LastAdmin);
    }
    crate::store::update_record(store, TOKENS, id, |cur| {
        let mut t: Token = match cur {
            Some(b) => serde_json::from_slice(b).map_err(|e| StoreError::Corrupt {
                key: id.into(),
                message: e.to_string(),
            })?,
            None => return Ok((None, ())),
        };
        t.revoked = true;
        Ok((Some(serde_json::to_vec(&t).expect("serializes")), ()))
    })?;
    Ok(true)
}

/// Whether any token exists (first start creates the admin token).
pub fn any(store: &dyn CaseStore) -> Result<bool, AuthError> {
    Ok(!store.record_scan(TOKENS, "")?.is_empty())
}

impl Principal {
    fn in_district(&self, district: &str) -> bool {
        self.district.as_deref() == Some(district)
    }

    /// May read this case. A case it may not read is reported as not found.
    pub fn can_read(&self, c: &Case) -> bool {
        match self.role {
            Role::CityAdmin => true,
            Role::DistrictAdmin | Role::Dispatcher => self.in_district(&c.district),
            Role::UnitHandler => {
                self.in_district(&c.district)
                    && self
                        .unit
                        .as_ref()
                        .is_some_and(|u| c.handler.as_ref() == Some(u) || c.co_handlers.contains(u))
            }
            Role::IntakeAgent => c.created_by == self.id,
        }
    }

    /// May create a case in this district.
    pub fn can_create(&self, district: &str) -> bool {
        match self.role {
            Role::CityAdmin => true,
            Role::IntakeAgent => self.district.as_deref().is_none_or(|d| d == district),
            Role::DistrictAdmin | Role::Dispatcher => self.in_district(district),
            Role::UnitHandler => false,
        }
    }

    /// May take this lifecycle action on this (readable) case.
    pub fn can_act(&self, c: &Case, action: &str) -> bool {
        match self.role {
            Role::CityAdmin => true,
            Role::DistrictAdmin | Role::Dispatcher => self.in_district(&c.district),
            Role::UnitHandler => {
                let lead = self.unit.is_some() && c.handler == self.unit;
                lead && crate::actions::spec(action).is_some_and(|a| a.unit_handler)
            }
            Role::IntakeAgent => false,
        }
    }

    /// May deploy and manage plug-ins for `district` (`city` for the city default).
    pub fn can_manage_plugins(&self, district: &str) -> bool {
        match self.role {
            Role::CityAdmin => true,
            Role::DistrictAdmin => self.in_district(district),
            _ => false,
        }
    }

    /// May read plug-in versions of `district` (dry runs included).
    pub fn can_read_plugins(&self, district: &str) -> bool {
        self.can_manage_plugins(district)
            || (self.role == Role::Dispatcher && self.in_district(district))
    }
}
