//! Open311 GeoReport v2 under `/open311/v2/`: the city's services, request intake through
//! exactly the same intake as `POST /v1/cases`, and request queries, in JSON and XML.
//!
//! Errors follow the spec: a list of `{code, description}` with 400, 403 or 404.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{AppState, Route, blocking};
use crate::calendar::{format_datetime, parse_datetime};
use crate::directory::{Directory, UnitKind};
use crate::intake::{self, Caller, NewCase};
use crate::model::{Case, Channel, Dispute, Location};
use crate::service::{Service, ServiceError};
use crate::store::Filter;

const OFFSET: i32 = 480;
const DEFAULT_WINDOW_MS: i64 = 90 * 86_400_000;
const MAX_RESULTS: usize = 1000;

pub(crate) fn routes() -> Vec<Route> {
    let r = |path, method, summary, body, ok, handler| Route {
        path,
        method,
        summary,
        auth: false,
        body,
        ok,
        handler,
    };
    vec![
        r(
            "/open311/v2/{resource}",
            "GET",
            "Open311: services.{json,xml} or requests.{json,xml}",
            None,
            200,
            get(list),
        ),
        r(
            "/open311/v2/{resource}",
            "POST",
            "Open311: create a request (requests.{json,xml}, form-encoded, api_key)",
            Some("form"),
            200,
            axum::routing::post(create),
        ),
        r(
            "/open311/v2/services/{file}",
            "GET",
            "Open311: a service definition ({code}.{json,xml})",
            None,
            200,
            get(definition),
        ),
        r(
            "/open311/v2/requests/{file}",
            "GET",
            "Open311: one request ({id}.{json,xml})",
            None,
            200,
            get(one),
        ),
    ]
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
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
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
        Format::Xml => {
            let mut out = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><{root}>");
            for r in records {
                out.push_str(&format!("<{item}>"));
                for (k, v) in r {
                    out.push_str(&xml_value(k, &v));
                }
                out.push_str(&format!("</{item}>"));
            }
            out.push_str(&format!("</{root}>"));
            ([(CONTENT_TYPE, "text/xml; charset=utf-8")], out).into_response()
        }
    }
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

async fn list(
    State(state): State<AppState>,
    Path(resource): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Error311> {
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
            let records = blocking(&state, move |svc| Ok(query_requests(svc, &q, format)))
                .await
                .map_err(|e| err(503, e.to_string(), format))??;
            Ok(render(format, "service_requests", "request", records))
        }
        _ => Err(err(404, format!("no Open311 resource `{name}`"), format)),
    }
}

fn request_record(svc: &Service, dir: &Directory, c: &Case) -> Record {
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
    let _ = svc;
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

fn query_requests(
    svc: &Service,
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
            if let Ok(Some(c)) = svc.store.get_case(id) {
                out.push(request_record(svc, &dir, &c));
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
    let now = svc.clock.now();
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
    loop {
        let page = svc
            .store
            .list(&filter, cursor.as_deref(), crate::store::MAX_PAGE)
            .map_err(|e| err(503, e.to_string(), format))?;
        for c in &page.cases {
            let status = if c.is_open() { "open" } else { "closed" };
            if codes
                .as_ref()
                .is_some_and(|cs| !cs.contains(&c.category.as_str()))
                || statuses.as_ref().is_some_and(|ss| !ss.contains(&status))
            {
                continue;
            }
            out.push(request_record(svc, &dir, c));
            if out.len() == MAX_RESULTS {
                return Ok(out);
            }
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => return Ok(out),
        }
    }
}

async fn one(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, Error311> {
    let Some((id, format)) = split(&file) else {
        return Err(err(404, "ask for {id}.json or {id}.xml", Format::Json));
    };
    let id = id.to_owned();
    let rec = blocking(&state, move |svc| {
        let dir = svc.directory()?;
        Ok(svc
            .store
            .get_case(&id)
            .ok()
            .flatten()
            .map(|c| request_record(svc, &dir, &c)))
    })
    .await
    .map_err(|e| err(503, e.to_string(), format))?;
    match rec {
        Some(r) => Ok(render(format, "service_requests", "request", vec![r])),
        None => Err(err(404, format!("no service request `{file}`"), format)),
    }
}

async fn definition(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, Error311> {
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
        (None, Some(a)) => dir
            .units()
            .find(|u| {
                matches!(
                    u.kind,
                    UnitKind::Grid | UnitKind::Community | UnitKind::Village
                ) && (u.name == a || u.id == a)
            })
            .cloned()
            .ok_or_else(|| {
                err(
                    400,
                    format!("address_string `{a}` matches no community or grid; send address_id"),
                    format,
                )
            })?,
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

async fn create(
    State(state): State<AppState>,
    Path(resource): Path<String>,
    body: Bytes,
) -> Result<Response, Error311> {
    let Some(("requests", format)) = split(&resource) else {
        return Err(err(
            404,
            "POST to requests.json or requests.xml",
            Format::Json,
        ));
    };
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body)
        .map_err(|e| err(400, format!("the body is not form-encoded: {e}"), format))?;
    let key = form
        .get("api_key")
        .ok_or_else(|| err(403, "api_key is required to create requests", format))?
        .clone();
    let out = blocking(&state, move |svc| {
        Ok(create_request(svc, &form, &key, format))
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
    key: &str,
    format: Format,
) -> Result<Record, Error311> {
    let principal = svc
        .tokens
        .authenticate(&svc.store, key)
        .map_err(|_| err(403, "the api_key is not valid", format))?;
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
    let taken = intake::intake(svc, &new, &principal.id).map_err(|e| match e {
        ServiceError::Invalid(m) => err(400, m, format),
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
