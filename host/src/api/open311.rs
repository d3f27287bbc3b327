//! Open311 GeoReport v2 under `/open311/v2/`: the city's services, request intake through
//! exactly the same intake as `POST /v1/cases`, and request queries, in JSON and XML.
//!
//! Errors follow the spec: a list of `{code, description}` with 400, 403 or 404.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{AppState, Route, blocking};
use crate::calendar::{format_datetime, parse_datetime};
use crate::directory::{Directory, UnitKind};
use crate::intake::{Caller, NewCase};
use crate::model::{Case, Channel, Dispute, Location};
use crate::service::{Service, ServiceError};
use crate::store::Filter;

const OFFSET: i32 = 480;
const DEFAULT_WINDOW_MS: i64 = 90 * 86_400_000;
const MAX_RESULTS: usize = 1000;

pub(crate) fn routes() -> Vec<Route> {
    let r = Route::open;
    vec![
        r(
            "/open311/v2/{resource}",
            "GET",
            "Open311: services.{json,xml} or requests.{json,xml}; without a key, requests show category, status, community and dates only",
            200,
            get(list),
        )
        .query::<RequestsQuery>(),
        r(
            "/open311/v2/{resource}",
            "POST",
            "Open311: create a request (requests.{json,xml}, form-encoded, api_key in the form, the query or a bearer header)",
            201,
            axum::routing::post(create),
        )
        .form::<RequestForm>(),
        r(
            "/open311/v2/services/{file}",
            "GET",
            "Open311: a service definition ({code}.{json,xml})",
            200,
            get(definition),
        ),
        r(
            "/open311/v2/requests/{file}",
            "GET",
            "Open311: one request ({id}.{json,xml})",
            200,
            get(one),
        )
        .query::<KeyQuery>(),
    ]
}

/// The query of `GET requests.{json,xml}` (any other parameter is ignored, as GeoReport
/// clients send extras such as `jurisdiction_id`).
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[allow(dead_code)] // read through the map the handler parses; declared for the document
struct RequestsQuery {
    /// Comma-separated ids; when given, the other filters are ignored.
    service_request_id: Option<String>,
    /// Comma-separated service codes.
    service_code: Option<String>,
    /// W3C datetime, e.g. 2026-11-30T09:00:00+08:00 (default: 90 days before end_date).
    start_date: Option<String>,
    /// W3C datetime (default: now).
    end_date: Option<String>,
    /// `open`, `closed`, or both comma-separated.
    status: Option<String>,
    /// A token: with one that may read a request, it is shown in full.
    api_key: Option<String>,
}

/// The query of `GET requests/{id}.{json,xml}`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[allow(dead_code)] // read through the map the handler parses; declared for the document
struct KeyQuery {
    /// A token: with one that may read the request, it is shown in full.
    api_key: Option<String>,
}

/// The form of `POST requests.{json,xml}`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // read through the map the handler parses; declared for the document
struct RequestForm {
    /// An intake token (or send it in the query or a bearer header).
    api_key: Option<String>,
    /// The service code (see services.json).
    service_code: String,
    /// A community or grid id of the directory.
    address_id: Option<String>,
    /// A community or grid name of the directory.
    address_string: Option<String>,
    /// Latitude (kept, but not enough to locate the request alone).
    lat: Option<f64>,
    /// Longitude.
    long: Option<f64>,
    /// What the citizen said.
    description: Option<String>,
    /// The caller's phone number (hashed at once, never stored).
    phone: Option<String>,
    /// For dispute services: the amount in whole CNY.
    #[serde(rename = "attribute[dispute_amount]")]
    #[schema(rename = "attribute[dispute_amount]")]
    dispute_amount: Option<u64>,
    /// For dispute services: each party's chamber of commerce, comma-separated.
    #[serde(rename = "attribute[party_chambers]")]
    #[schema(rename = "attribute[party_chambers]")]
    party_chambers: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Xml,
}

fn split(file: &str) -> Option<(&str, Format)> {
    let (name, ext) = file.rsplit_once('.')?;
    match ext {
        "json" => Some((name, Format::Json)),
        "xml" => Some((name, Format::Xml)),
        _ => None,
    }
}

/// An Open311 error response.
struct Error311 {
    status: StatusCode,
    description: String,
    format: Format,
}

fn err(status: u16, description: impl Into<String>, format: Format) -> Error311 {
    Error311 {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        description: description.into(),
        format,
    }
}

impl IntoResponse for Error311 {
    fn into_response(self) -> Response {
        let code = self.status.as_u16();
        match self.format {
            Format::Json => (
                self.status,
                axum::Json(serde_json::json!([{ "code": code, "description": self.description }])),
            )
                .into_response(),
            Format::Xml => {
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><errors><error><code>{code}</code><description>{}</description></error></errors>",
                    esc(&self.description)
                );
                (
                    self.status,
                    [(CONTENT_TYPE, "text/xml; charset=utf-8")],
                    body,
                )
                    .into_response()
            }
        }
    }
}

fn esc(s: &str) -> String {
    crate::text::xml_escape(s)
}

/// A flat record rendered as a JSON object or an XML element.
type Record = Vec<(&'static str, serde_json::Value)>;

fn render(format: Format, root: &str, item: &str, records: Vec<Record>) -> Response {
    match format {
        Format::Json => {
            let list: Vec<serde_json::Value> = records
                .into_iter()
                .map(|r| {
                    serde_json::Value::Object(
                        r.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                    )
                })
                .collect();
            axum::Json(list).into_response()
        }
        Format::Xml => (
            [(CONTENT_TYPE, "text/xml; charset=utf-8")],
            xml_document(root, item, records),
        )
            .into_response(),
    }
}

fn xml_document(root: &str, item: &str, records: Vec<Record>) -> String {
    let mut out = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><{root}>");
    for r in records {
        out.push_str(&format!("<{item}>"));
        for (k, v) in r {
            out.push_str(&xml_value(k, &v));
        }
        out.push_str(&format!("</{item}>"));
    }
    out.push_str(&format!("</{root}>"));
    out
}

/// Fuzzing: reads `body` as the POST reads a form, locates it in `dir`, and returns the
/// XML that a request carrying its values would be shown as (for the harness to check it
/// is well-formed). Never panics on any input.
pub(crate) fn fuzz_form(dir: &Directory, body: &[u8]) -> Option<String> {
    let form = parse_form(body, Format::Xml).ok()?;
    let _ = locate(dir, &form, Format::Xml);
    let field = |k: &str| form.get(k).cloned().map(serde_json::Value::String);
    let record: Record = vec![
        ("service_request_id", field("service_request_id").into()),
        ("service_code", field("service_code").into()),
        ("description", field("description").into()),
        ("address", field("address_string").into()),
        ("address_id", field("address_id").into()),
        ("status_notes", field("api_key").into()),
        (
            "attributes",
            serde_json::Value::Array(
                form.values()
                    .take(8)
                    .map(|v| serde_json::json!({"code": v, "values": [v]}))
                    .collect(),
            ),
        ),
    ];
    Some(xml_document("service_requests", "request", vec![record]))
}

fn xml_value(k: &str, v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => format!("<{k}/>"),
        serde_json::Value::String(s) => format!("<{k}>{}</{k}>", esc(s)),
        serde_json::Value::Array(items) => {
            let inner: String = items
                .iter()
                .map(|i| match i {
                    serde_json::Value::Object(o) => format!(
                        "<{}>{}</{}>",
                        singular(k),
                        o.iter()
                            .map(|(kk, vv)| xml_value(kk, vv))
                            .collect::<String>(),
                        singular(k)
                    ),
                    other => xml_value(singular(k), other),
                })
                .collect();
            format!("<{k}>{inner}</{k}>")
        }
        serde_json::Value::Object(o) => format!(
            "<{k}>{}</{k}>",
            o.iter()
                .map(|(kk, vv)| xml_value(kk, vv))
                .collect::<String>()
        ),
        other => format!("<{k}>{other}</{k}>"),
    }
}

fn singular(k: &str) -> &str {
    match k {
        "attributes" => "attribute",
        "values" => "value",
        "keywords" => "keyword",
        _ => "item",
    }
}

fn service_records(dir: &Directory) -> Vec<Record> {
    dir.categories()
        .into_iter()
        .map(|c| {
            let keywords: Vec<String> = [c.dispute.clone(), c.lead_function.clone()]
                .into_iter()
                .flatten()
                .collect();
            vec![
                ("service_code", c.code.clone().into()),
                ("service_name", c.name.clone().into()),
                ("description", format!("{} ({})", c.name, c.code).into()),
                ("metadata", c.dispute.is_some().into()),
                ("type", "realtime".into()),
                ("keywords", keywords.join(",").into()),
                ("group", c.default_kind.clone().into()),
            ]
        })
        .collect()
}

/// The caller's key, from `api_key` in the query or an `Authorization: Bearer` header.
fn caller_key(headers: &HeaderMap, q: &HashMap<String, String>) -> Option<String> {
    q.get("api_key").cloned().or_else(|| {
        let h = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = h.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    })
}

/// The principal behind a key, if one was given; a key that is not valid is a 403.
fn principal(
    svc: &Service,
    key: Option<&str>,
    format: Format,
) -> Result<Option<crate::auth::Principal>, Error311> {
    key.map(|k| {
        svc.authenticate(k)
            .map_err(|_| err(403, "the api_key is not valid", format))
    })
    .transpose()
}

fn view_of(p: Option<&crate::auth::Principal>, c: &Case) -> View {
    if p.is_some_and(|p| p.can_read(c)) {
        View::Full
    } else {
        View::Public
    }
}

async fn list(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Error311> {
    let Path(resource) = path.map_err(|e| err(400, e.body_text(), Format::Json))?;
    let Some((name, format)) = split(&resource) else {
        return Err(err(
            404,
            "use services.json, services.xml, requests.json or requests.xml",
            Format::Json,
        ));
    };
    match name {
        "services" => {
            let out = blocking(&state, |svc| {
                let dir = svc.directory()?;
                Ok(service_records(&dir))
            })
            .await
            .map_err(|e| err(503, e.to_string(), format))?;
            Ok(render(format, "services", "service", out))
        }
        "requests" => {
            let Query(q) = query.map_err(|e| err(400, e.body_text(), format))?;
            let key = caller_key(&headers, &q);
            let records = blocking(&state, move |svc| {
                Ok(principal(svc, key.as_deref(), format)
                    .and_then(|p| query_requests(svc, p.as_ref(), &q, format)))
            })
            .await
            .map_err(|e| err(503, e.to_string(), format))??;
            Ok(render(format, "service_requests", "request", records))
        }
        _ => Err(err(404, format!("no Open311 resource `{name}`"), format)),
    }
}

/// How much of a request a caller sees.
#[derive(Clone, Copy, PartialEq)]
enum View {
    /// Anyone: category, status, community and dates. Never the address text, the
    /// description, the coordinates or the handling unit (an agent types names and flat
    /// numbers into the address).
    Public,
    /// A caller whose key may read the case: everything Open311 carries.
    Full,
}

fn request_record(dir: &Directory, c: &Case, view: View) -> Record {
    if view == View::Public {
        let community = c.location.community.clone();
        return vec![
            ("service_request_id", c.id.clone().into()),
            ("status", if c.is_open() { "open" } else { "closed" }.into()),
            ("status_notes", c.status.as_str().into()),
            (
                "service_name",
                dir.category(&c.category)
                    .map(|x| x.name.clone())
                    .unwrap_or_default()
                    .into(),
            ),
            ("service_code", c.category.clone().into()),
            ("description", serde_json::Value::Null),
            ("agency_responsible", serde_json::Value::Null),
            ("service_notice", serde_json::Value::Null),
            (
                "requested_datetime",
                format_datetime(c.created_at, OFFSET).into(),
            ),
            (
                "updated_datetime",
                format_datetime(c.updated_at, OFFSET).into(),
            ),
            (
                "expected_datetime",
                c.deadlines
                    .resolution
                    .map(|t| format_datetime(t, OFFSET))
                    .into(),
            ),
            (
                "address",
                community
                    .as_ref()
                    .and_then(|u| dir.unit(u))
                    .map(|u| u.name.clone())
                    .into(),
            ),
            ("address_id", community.into()),
            ("zipcode", serde_json::Value::Null),
            ("lat", serde_json::Value::Null),
            ("long", serde_json::Value::Null),
            ("media_url", serde_json::Value::Null),
        ];
    }
    let open = c.is_open();
    let unit_name = |id: &Option<String>| {
        id.as_ref()
            .and_then(|u| dir.unit(u))
            .map(|u| u.name.clone())
    };
    let address_id = c
        .location
        .grid
        .clone()
        .or_else(|| c.location.community.clone());
    vec![
        ("service_request_id", c.id.clone().into()),
        ("status", if open { "open" } else { "closed" }.into()),
        ("status_notes", c.status.as_str().into()),
        (
            "service_name",
            dir.category(&c.category)
                .map(|x| x.name.clone())
                .unwrap_or_default()
                .into(),
        ),
        ("service_code", c.category.clone().into()),
        ("description", serde_json::Value::Null),
        (
            "agency_responsible",
            unit_name(&c.handler).or(c.handler.clone()).into(),
        ),
        ("service_notice", serde_json::Value::Null),
        (
            "requested_datetime",
            format_datetime(c.created_at, OFFSET).into(),
        ),
        (
            "updated_datetime",
            format_datetime(c.updated_at, OFFSET).into(),
        ),
        (
            "expected_datetime",
            c.deadlines
                .resolution
                .map(|t| format_datetime(t, OFFSET))
                .into(),
        ),
        (
            "address",
            c.location
                .address
                .clone()
                .or_else(|| unit_name(&address_id))
                .into(),
        ),
        ("address_id", address_id.into()),
        ("zipcode", serde_json::Value::Null),
        ("lat", c.location.lat.into()),
        ("long", c.location.lon.into()),
        ("media_url", serde_json::Value::Null),
    ]
}

/// Most cases one query reads: a filter that matches little over a wide window answers
/// with what it found by then instead of walking on.
const MAX_SCANNED: usize = 20_000;

fn query_requests(
    svc: &Service,
    p: Option<&crate::auth::Principal>,
    q: &HashMap<String, String>,
    format: Format,
) -> Result<Vec<Record>, Error311> {
    let dir = svc
        .directory()
        .map_err(|e| err(503, e.to_string(), format))?;
    if let Some(ids) = q.get("service_request_id") {
        let mut out = Vec::new();
        for id in ids
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .take(MAX_RESULTS)
        {
            if let Ok(Some(c)) = svc.find_case(id) {
                out.push(request_record(&dir, &c, view_of(p, &c)));
            }
        }
        return Ok(out);
    }
    let date = |k: &str| -> Result<Option<i64>, Error311> {
        q.get(k)
            .map(|v| {
                parse_datetime(v).ok_or_else(|| {
                    err(
                        400,
                        format!(
                            "{k} `{v}` is not a W3C datetime such as 2026-11-30T09:00:00+08:00"
                        ),
                        format,
                    )
                })
            })
            .transpose()
    };
    let now = svc.clock().now();
    let (start, end) = (date("start_date")?, date("end_date")?);
    let (from, to) = match (start, end) {
        (Some(s), Some(e)) => (s, e),
        (Some(s), None) => (s, s + DEFAULT_WINDOW_MS),
        (None, Some(e)) => (e - DEFAULT_WINDOW_MS, e),
        (None, None) => (now + 1 - DEFAULT_WINDOW_MS, now + 1),
    };
    if to < from || to - from > DEFAULT_WINDOW_MS {
        return Err(err(
            400,
            "start_date must be before end_date and the range at most 90 days",
            format,
        ));
    }
    let codes: Option<Vec<&str>> = q
        .get("service_code")
        .map(|s| s.split(',').map(str::trim).collect());
    let statuses: Option<Vec<&str>> = q
        .get("status")
        .map(|s| s.split(',').map(str::trim).collect());
    if let Some(bad) = statuses
        .iter()
        .flatten()
        .find(|s| !matches!(**s, "open" | "closed"))
    {
        return Err(err(
            400,
            format!("status `{bad}` is not open or closed"),
            format,
        ));
    }
    let filter = Filter {
        created_from: Some(from),
        created_to: Some(to),
        ..Filter::default()
    };
    let mut out = Vec::new();
    let mut cursor = None;
    let mut scanned = 0;
    loop {
        let page = svc
            .list_cases(&filter, cursor.as_deref(), crate::store::MAX_PAGE)
            .map_err(|e| err(503, e.to_string(), format))?;
        scanned += page.scanned;
        for c in &page.cases {
            let status = if c.is_open() { "open" } else { "closed" };
            if codes
                .as_ref()
                .is_some_and(|cs| !cs.contains(&c.category.as_str()))
                || statuses.as_ref().is_some_and(|ss| !ss.contains(&status))
            {
                continue;
            }
            out.push(request_record(&dir, c, view_of(p, c)));
            if out.len() == MAX_RESULTS {
                return Ok(out);
            }
        }
        match page.next {
            Some(n) if scanned < MAX_SCANNED => cursor = Some(n),
            _ => return Ok(out),
        }
    }
}

async fn one(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Error311> {
    let Path(file) = path.map_err(|e| err(400, e.body_text(), Format::Json))?;
    let Some((id, format)) = split(&file) else {
        return Err(err(404, "ask for {id}.json or {id}.xml", Format::Json));
    };
    let Query(q) = query.map_err(|e| err(400, e.body_text(), format))?;
    let key = caller_key(&headers, &q);
    let id = id.to_owned();
    let rec = blocking(&state, move |svc| {
        let dir = svc.directory()?;
        Ok(principal(svc, key.as_deref(), format).map(|p| {
            svc.find_case(&id)
                .ok()
                .flatten()
                .map(|c| request_record(&dir, &c, view_of(p.as_ref(), &c)))
        }))
    })
    .await
    .map_err(|e| err(503, e.to_string(), format))??;
    match rec {
        Some(r) => Ok(render(format, "service_requests", "request", vec![r])),
        None => Err(err(404, format!("no service request `{file}`"), format)),
    }
}

async fn definition(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, Error311> {
    let Path(file) = path.map_err(|e| err(400, e.body_text(), Format::Json))?;
    let Some((code, format)) = split(&file) else {
        return Err(err(404, "ask for {code}.json or {code}.xml", Format::Json));
    };
    let code = code.to_owned();
    let cat = blocking(&state, move |svc| {
        Ok(svc.directory()?.category(&code).cloned())
    })
    .await
    .map_err(|e| err(503, e.to_string(), format))?;
    let Some(cat) = cat else {
        return Err(err(404, format!("no service `{file}`"), format));
    };
    let attributes: Vec<serde_json::Value> = if cat.dispute.is_some() {
        vec![
            serde_json::json!({"variable": true, "code": "dispute_amount", "datatype": "number", "required": false, "datatype_description": "whole CNY", "order": 1, "description": "Amount in dispute (CNY)", "values": []}),
            serde_json::json!({"variable": true, "code": "party_chambers", "datatype": "string", "required": false, "datatype_description": "comma-separated, one per party", "order": 2, "description": "Each party's chamber of commerce, if any", "values": []}),
        ]
    } else {
        vec![]
    };
    let record: Record = vec![
        ("service_code", cat.code.clone().into()),
        ("attributes", attributes.into()),
    ];
    Ok(match format {
        Format::Json => axum::Json(serde_json::Value::Object(
            record.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ))
        .into_response(),
        Format::Xml => {
            let body: String = record.iter().map(|(k, v)| xml_value(k, v)).collect();
            ([(CONTENT_TYPE, "text/xml; charset=utf-8")], format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><service_definition>{body}</service_definition>")).into_response()
        }
    })
}

/// Maps an Open311 location to a community or grid of the directory.
fn locate(
    dir: &Directory,
    form: &HashMap<String, String>,
    format: Format,
) -> Result<(String, Location), Error311> {
    let lat = form
        .get("lat")
        .map(|v| {
            v.parse::<f64>()
                .map_err(|_| err(400, "lat is not a number", format))
        })
        .transpose()?;
    let lon = form
        .get("long")
        .map(|v| {
            v.parse::<f64>()
                .map_err(|_| err(400, "long is not a number", format))
        })
        .transpose()?;
    let by_id = form.get("address_id").map(String::as_str);
    let by_name = form.get("address_string").map(String::as_str);
    let unit = match (by_id, by_name) {
        (Some(id), _) => dir.unit(id).cloned().ok_or_else(|| {
            err(
                400,
                format!("address_id `{id}` is not a community or grid of the directory"),
                format,
            )
        })?,
        (None, Some(a)) => match place_named(dir, a) {
            Some(unit) => unit,
            // An address the directory cannot place is still the citizen's case: it goes to
            // its district's desk for triage with the address kept, when the text names a
            // district.
            None => {
                let district = district_named(dir, a).ok_or_else(|| {
                    err(
                        400,
                        format!(
                            "address_string `{a}` names no community, grid or district of the city; \
                             include one of {} or send address_id",
                            dir.districts()
                                .iter()
                                .filter_map(|d| dir.unit(d).map(|u| district_name(&u.name)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        format,
                    )
                })?;
                let loc = Location {
                    lat,
                    lon,
                    address: Some(a.to_owned()),
                    ..Location::default()
                };
                return Ok((district, loc));
            }
        },
        (None, None) if lat.is_some() && lon.is_some() => {
            return Err(err(
                400,
                "lat/long cannot be mapped to a grid: the directory has no grid areas; send address_id (a community or grid id) or address_string",
                format,
            ));
        }
        (None, None) => {
            return Err(err(
                400,
                "a location is required: address_id, address_string, or lat and long",
                format,
            ));
        }
    };
    let district = dir
        .district_of(&unit.id)
        .ok_or_else(|| err(400, format!("`{}` is not in a district", unit.id), format))?
        .to_owned();
    let mut loc = Location {
        lat,
        lon,
        address: by_name.map(str::to_owned),
        ..Location::default()
    };
    match unit.kind {
        UnitKind::Grid => loc.grid = Some(unit.id.clone()),
        UnitKind::Community | UnitKind::Village => loc.community = Some(unit.id.clone()),
        _ => {
            return Err(err(
                400,
                format!("`{}` is not a community or grid", unit.id),
                format,
            ));
        }
    }
    Ok((district, loc))
}

/// A district desk's name as people say the district: up to its first 区, 县 or 市
/// (`吉阳区12345分中心` → `吉阳区`).
fn district_name(desk: &str) -> &str {
    desk.char_indices()
        .find(|(_, c)| matches!(c, '区' | '县' | '市'))
        .map_or(desk, |(i, c)| &desk[..i + c.len_utf8()])
}

/// The names people write a place by: its directory name, and that name without its
/// district's (`吉阳区月河社区` → `月河社区`).
fn spoken_names<'a>(dir: &'a Directory, u: &'a crate::directory::Unit) -> Vec<&'a str> {
    let mut names = vec![u.name.as_str()];
    if let Some(desk) = dir.district_of(&u.id).and_then(|d| dir.unit(d))
        && let Some(short) = u.name.strip_prefix(district_name(&desk.name))
        && !short.is_empty()
    {
        names.push(short);
    }
    names
}

/// The community, village or grid an address names — its id, its name, or its name as
/// people write it, anywhere in the text (`三亚市月河社区幸福路12号`). The most specific
/// wins (a grid over its community, a longer name over a shorter one); a name that fits
/// places in two districts places nothing.
fn place_named(dir: &Directory, address: &str) -> Option<std::sync::Arc<crate::directory::Unit>> {
    let address = address.trim();
    let mut best: Option<(usize, &std::sync::Arc<crate::directory::Unit>)> = None;
    let mut districts = std::collections::BTreeSet::new();
    for u in dir.units() {
        if !matches!(
            u.kind,
            UnitKind::Grid | UnitKind::Community | UnitKind::Village
        ) {
            continue;
        }
        if u.id == address {
            return Some(u.clone());
        }
        let Some(len) = spoken_names(dir, u)
            .into_iter()
            .filter(|n| address.contains(n))
            .map(str::len)
            .max()
        else {
            continue;
        };
        districts.insert(dir.district_of(&u.id));
        let rank = len + usize::from(u.kind == UnitKind::Grid);
        if best.is_none_or(|(r, _)| rank > r) {
            best = Some((rank, u));
        }
    }
    let (_, unit) = best?;
    // A grid's name repeats its community's, so both fit one place; two districts do not.
    (districts.len() == 1).then(|| unit.clone())
}

/// The district an address names (`吉阳区幸福路12号` → `jiyang`), if exactly one.
fn district_named(dir: &Directory, address: &str) -> Option<String> {
    let named: Vec<String> = dir
        .districts()
        .into_iter()
        .filter(|d| {
            dir.unit(d)
                .is_some_and(|u| address.contains(district_name(&u.name)))
        })
        .collect();
    match named.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Reads a form body strictly: `application/x-www-form-urlencoded`, every name and value
/// valid UTF-8 once decoded (nothing replaced silently), each name given once.
fn parse_form(body: &[u8], format: Format) -> Result<HashMap<String, String>, Error311> {
    let mut form = HashMap::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let decode = |raw: &[u8]| -> Result<String, Error311> {
            let plus: Vec<u8> = raw
                .iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect();
            percent_encoding::percent_decode(&plus)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| {
                    err(
                        400,
                        "the form is not valid UTF-8 once decoded; send UTF-8 text",
                        format,
                    )
                })
        };
        let (k, v) = (decode(k)?, decode(v)?);
        if form.insert(k.clone(), v).is_some() {
            return Err(err(400, format!("`{k}` is given twice"), format));
        }
    }
    Ok(form)
}

/// Creates a request. A key in the query or an `Authorization` header is checked before
/// the body is read, so an unauthenticated client cannot hold the server with a slow body;
/// a key in the body (as GeoReport v2 sends it) is read within the body limits and time.
async fn create(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, Error311> {
    let Path(resource) = path.map_err(|e| err(400, e.body_text(), Format::Json))?;
    let Some(("requests", format)) = split(&resource) else {
        return Err(err(
            404,
            "POST to requests.json or requests.xml",
            Format::Json,
        ));
    };
    let Query(q) = query.map_err(|e| err(400, e.body_text(), format))?;
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(err(
            415,
            "send the request as `Content-Type: application/x-www-form-urlencoded`",
            format,
        ));
    }
    let early = caller_key(&headers, &q);
    let authenticated = match early {
        Some(key) => Some(
            blocking(&state, move |svc| Ok(principal(svc, Some(&key), format)))
                .await
                .map_err(|e| err(503, e.to_string(), format))??,
        )
        .flatten(),
        None => None,
    };
    let bytes = axum::body::to_bytes(body, super::JSON_LIMIT)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                err(
                    413,
                    format!("the form is larger than {} bytes", super::JSON_LIMIT),
                    format,
                )
            } else {
                err(400, format!("the body could not be read: {e}"), format)
            }
        })?;
    let form = parse_form(&bytes, format)?;
    let out = blocking(&state, move |svc| {
        let p = match authenticated {
            Some(p) => p,
            None => {
                let key = form
                    .get("api_key")
                    .ok_or_else(|| err(403, "api_key is required to create requests", format));
                match key.and_then(|k| principal(svc, Some(k), format)) {
                    Ok(Some(p)) => p,
                    Ok(None) => unreachable!("a key was given"),
                    Err(e) => return Ok(Err(e)),
                }
            }
        };
        Ok(create_request(svc, &form, &p, format))
    })
    .await
    .map_err(|e| err(503, e.to_string(), format))??;
    Ok((
        StatusCode::CREATED,
        render(format, "service_requests", "request", vec![out]),
    )
        .into_response())
}

fn create_request(
    svc: &Service,
    form: &HashMap<String, String>,
    principal: &crate::auth::Principal,
    format: Format,
) -> Result<Record, Error311> {
    let dir = svc
        .directory()
        .map_err(|e| err(503, e.to_string(), format))?;
    let code = form
        .get("service_code")
        .ok_or_else(|| err(400, "service_code is required", format))?;
    let cat = dir.category(code).ok_or_else(|| {
        err(
            400,
            format!("service_code `{code}` is not a service; see services.json"),
            format,
        )
    })?;
    let (district, location) = locate(&dir, form, format)?;
    if !principal.can_create(&district) {
        return Err(err(
            403,
            format!("this api_key may not create requests in {district}"),
            format,
        ));
    }
    let amount = form
        .get("attribute[dispute_amount]")
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                err(
                    400,
                    "attribute[dispute_amount] is not a whole number",
                    format,
                )
            })
        })
        .transpose()?;
    let chambers: Vec<Option<String>> = form
        .get("attribute[party_chambers]")
        .map(|v| {
            v.split(',')
                .map(|c| Some(c.trim().to_owned()).filter(|c| !c.is_empty()))
                .collect()
        })
        .unwrap_or_default();
    let dispute = cat.dispute.clone().map(|t| Dispute {
        dispute_type: t,
        amount,
        chambers,
    });
    let new = NewCase {
        district,
        category: code.clone(),
        kind: None,
        channel: Some(Channel::Open311),
        urgent: false,
        location,
        caller: Caller {
            phone: form.get("phone").cloned(),
        },
        flags: vec![],
        dispute,
        description: form.get("description").cloned().unwrap_or_default(),
    };
    let taken = svc.intake(&new, &principal.id).map_err(|e| match e {
        ServiceError::Invalid(m) => err(400, m, format),
        ServiceError::Intake(i) => err(400, i.0, format),
        other => err(503, other.to_string(), format),
    })?;
    let c = &taken.case;
    let reasons: Vec<String> = taken
        .decisions
        .iter()
        .flat_map(|d| d.reasons.clone())
        .collect();
    let notice = match &c.handler {
        Some(h) => format!(
            "{} → {} ({})",
            c.status.as_str(),
            dir.unit(h).map(|u| u.name.as_str()).unwrap_or(h),
            reasons.join(", ")
        ),
        None => format!("{} ({})", c.status.as_str(), reasons.join(", ")),
    };
    Ok(vec![
        ("service_request_id", c.id.clone().into()),
        ("service_notice", notice.into()),
        ("account_id", serde_json::Value::Null),
    ])
}
