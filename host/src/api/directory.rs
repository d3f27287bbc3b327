//! Reference data for clients: the units a token may dispatch to and the category list, so
//! forms offer choices instead of typed ids.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;

use super::extract::Auth;
use super::{ApiError, AppState, Route, blocking};

pub(crate) fn routes() -> Vec<Route> {
    vec![Route::authed(
        "/v1/directory",
        "GET",
        "The directory version, the units visible to this token (its district's and the city's), the categories and the intake flags",
        200,
        get(directory),
    )]
}

async fn directory(
    State(state): State<AppState>,
    Auth(p): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let out = blocking(&state, move |svc| {
        let dir = svc.directory()?;
        let mut units: Vec<_> = dir
            .units()
            .filter(|u| match &p.district {
                Some(d) => dir.visible(&u.id, d),
                None => true,
            })
            .map(|u| (**u).clone())
            .collect();
        units.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(serde_json::json!({
            "version": dir.version(),
            "districts": dir.districts().into_iter().filter(|d| p.district.as_ref().is_none_or(|own| own == d)).collect::<Vec<_>>(),
            "units": units,
            "categories": dir.categories(),
            // `repeat` is set by the platform, never at intake.
            "flags": crate::runtime::wit::CaseFlags::all_names().filter(|f| *f != "repeat").collect::<Vec<_>>(),
        }))
    })
    .await?;
    Ok(axum::Json(out))
}
