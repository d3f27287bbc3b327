//! OpenAPI schemas of the types requests and responses are made of, derived by utoipa:
//! what the API's document and the action declarations share.

use serde_json::{Value, json};
use utoipa::openapi::{RefOr, Schema};

/// Named schemas collected while describing routes.
pub type Components = Vec<(String, RefOr<Schema>)>;
/// Describes a type: adds its schema (and those it refers to) and returns a reference.
pub type SchemaFn = fn(&mut Components) -> Value;

/// The schema of `T` as a reference, with `T` and what it refers to added to `c`.
pub fn schema_of<T: utoipa::ToSchema>(c: &mut Components) -> Value {
    T::schemas(c);
    let name = T::name().into_owned();
    c.push((name.clone(), T::schema()));
    json!({"$ref": format!("#/components/schemas/{name}")})
}
