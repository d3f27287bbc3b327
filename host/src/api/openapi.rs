//! The OpenAPI document, built from the route table: every request body, query parameter
//! and main response described by the schema utoipa derives from the type the handler
//! actually reads or writes, and every error answer in the format it has (the API's
//! `{"error": …}`, Open311's list of `{code, description}`).

use serde_json::{Value, json};
use utoipa::openapi::path::ParameterIn;

use super::Route;

pub(crate) use crate::schema::{Components, SchemaFn, schema_of};
/// Describes a query's parameters.
pub(crate) type ParamsFn = fn() -> Vec<Value>;

/// A request body.
pub(crate) enum Body {
    /// `application/json`, read as the type described.
    Json(SchemaFn),
    /// `application/x-www-form-urlencoded`, read as the type described.
    Form(SchemaFn),
    /// `application/wasm`: a component.
    Wasm,
}

/// The query parameters `Q` reads.
pub(crate) fn params_of<Q: utoipa::IntoParams>() -> Vec<Value> {
    Q::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .map(|p| serde_json::to_value(p).unwrap_or_default())
        .collect()
}

/// Every status an operation may answer with besides its success: each is documented, so
/// a client (and schemathesis) knows what to expect.
fn errors(route: &Route) -> Vec<(u16, &'static str)> {
    let mut out = vec![
        (400, "the request is malformed"),
        (404, "no such thing, or not visible to this token"),
        (
            429,
            "too many requests in flight, or the same work already running",
        ),
        (500, "an internal error (logged)"),
        (
            503,
            "not available now (starting, or the request took too long)",
        ),
    ];
    if route.auth {
        out.push((401, "a valid bearer token is required"));
        out.push((403, "this token may not do this"));
    }
    if route.path.starts_with("/open311/") {
        out.push((403, "the api_key is missing or not valid"));
    }
    if route.method != "GET" {
        out.extend([
            (409, "conflicts with the current state"),
            (413, "the body is too large"),
            (415, "wrong content type"),
            (422, "well-formed but not acceptable"),
        ]);
    } else if route.query.is_some() {
        out.push((422, "a parameter is not acceptable"));
    }
    out.sort();
    out.dedup_by_key(|(code, _)| *code);
    out
}

/// Path parameters, with the values the Open311 resource names can take.
fn path_params(route: &Route) -> Vec<Value> {
    route
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = match (route.path, name, route.method) {
                ("/open311/v2/{resource}", _, "GET") => json!({"type": "string", "enum": [
                    "services.json", "services.xml", "requests.json", "requests.xml"]}),
                ("/open311/v2/{resource}", _, _) => {
                    json!({"type": "string", "enum": ["requests.json", "requests.xml"]})
                }
                ("/open311/v2/services/{file}", ..) | ("/open311/v2/requests/{file}", ..) => {
                    json!({"type": "string", "pattern": "^[^/]+\\.(json|xml)$"})
                }
                (_, "hook", _) => {
                    json!({"type": "string", "enum": ["eligibility", "routing", "escalation"]})
                }
                _ => json!({"type": "string"}),
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

/// The document.
pub(crate) fn document(routes: &[Route]) -> Value {
    let mut components: Components = Vec::new();
    let mut paths = serde_json::Map::new();
    for r in routes {
        let open311 = r.path.starts_with("/open311/");
        let error_schema = if open311 {
            json!({"$ref": "#/components/schemas/Open311Errors"})
        } else {
            json!({"$ref": "#/components/schemas/Error"})
        };
        let error_content = if open311 {
            json!({"application/json": {"schema": error_schema},
                   "text/xml": {"schema": {"type": "string"}}})
        } else {
            json!({"application/json": {"schema": error_schema}})
        };
        let success = match (&r.returns, open311, r.path) {
            (Some(f), _, _) => json!({"application/json": {"schema": f(&mut components)}}),
            (None, true, _) => {
                json!({"application/json": {}, "text/xml": {"schema": {"type": "string"}}})
            }
            (None, false, "/metrics") => {
                json!({"application/openmetrics-text": {"schema": {"type": "string"}}})
            }
            (None, false, p) if p.starts_with("/console") => json!({"text/html": {}}),
            (None, false, _) if r.ok == 204 => json!(null),
            (None, false, _) => {
                json!({"application/json": {"schema": {"type": ["object", "array"]}}})
            }
        };
        let mut responses = serde_json::Map::new();
        let mut ok = json!({"description": "success"});
        if !success.is_null() {
            ok["content"] = success;
        }
        responses.insert(r.ok.to_string(), ok);
        if r.path.ends_with("/plugins/{hook}") && r.method == "PUT" {
            responses.insert("200".into(), json!({"description": "the same component was deployed already", "content": {"application/json": {}}}));
            responses.insert("202".into(), json!({"description": "still compiling: the final answer will be at `status_url`", "content": {"application/json": {}}}));
        }
        for (code, why) in errors(r) {
            responses.insert(
                code.to_string(),
                json!({"description": why, "content": error_content.clone()}),
            );
        }
        let mut params = path_params(r);
        if let Some(q) = r.query {
            params.extend(q());
        }
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{} {}", r.method, r.path),
            "parameters": params,
            "responses": responses,
        });
        if r.auth {
            op["security"] = json!([{"bearer": []}]);
        }
        match &r.body {
            Some(Body::Json(f)) => {
                op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": f(&mut components)}}});
            }
            Some(Body::Form(f)) => {
                op["requestBody"] = json!({"required": true, "content": {"application/x-www-form-urlencoded": {"schema": f(&mut components)}}});
            }
            Some(Body::Wasm) => {
                op["requestBody"] = json!({"required": true, "content": {"application/wasm": {"schema": {"type": "string", "format": "binary"}}}});
            }
            None => {}
        }
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = op;
    }
    let mut schemas = serde_json::Map::new();
    for (name, schema) in components {
        let mut schema = serde_json::to_value(schema).unwrap_or_default();
        // A stored case refuses unknown fields when it is read back, but the API's views
        // extend it (its decisions and actions, its light): as a response it is open.
        if name == "Case" {
            schema
                .as_object_mut()
                .map(|o| o.remove("additionalProperties"));
        }
        schemas.insert(name, schema);
    }
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}),
    );
    schemas.insert(
        "Open311Errors".into(),
        json!({"type": "array", "items": {"type": "object", "required": ["code", "description"],
            "properties": {"code": {"type": "integer"}, "description": {"type": "string"}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "civic-rules", "version": env!("CARGO_PKG_VERSION"), "description": "City service hotline platform with district rule plug-ins."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        }
    })
}
