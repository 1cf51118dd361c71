//! The public HTTP API's request and response bodies and query strings: the one
//! definition the services (de)serialise and the gateway's OpenAPI document derives its
//! schemas from (`#[derive(ToSchema)]` reads the same serde attributes the wire uses).
//!
//! These are wire shapes, not the domain: a request body is taken as sent, with its
//! fields public, and each service parses it into its validated domain types, so that
//! every failing field can be reported at once. The schema constraints (`pattern`,
//! `minLength`, `maximum`, ...) state the rules those parsers enforce, for clients and
//! for schemathesis, which checks that server and document agree.

pub mod events;
pub mod orders;
pub mod users;

use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaFormat, SchemaType, Type};

/// A text rule several bodies share (a password, a name), written once and used by
/// `#[schema(schema_with = ...)]` on every field that follows it.
struct TextRule {
    description: &'static str,
    min_length: usize,
    max_length: usize,
    /// Lookaheads only, which mean the same in ECMAScript, Python and Rust regex engines.
    pattern: &'static str,
    format: Option<&'static str>,
}

impl TextRule {
    fn schema(&self, nullable: bool) -> Object {
        let kind = if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { Type::String.into() };
        ObjectBuilder::new()
            .schema_type(kind)
            .description(Some(self.description))
            .min_length(Some(self.min_length))
            .max_length(Some(self.max_length))
            .pattern(Some(self.pattern))
            .format(self.format.map(|format| SchemaFormat::Custom(format.to_owned())))
            .build()
    }
}

const PASSWORD: TextRule = TextRule {
    description: "8 to 128 characters with an upper-case letter `A-Z`, a lower-case letter `a-z`, a digit `0-9` and any other character.",
    min_length: 8,
    max_length: 128,
    pattern: r"^(?=[\s\S]*[a-z])(?=[\s\S]*[A-Z])(?=[\s\S]*[0-9])(?=[\s\S]*[^A-Za-z0-9])",
    format: Some("password"),
};

const NAME: TextRule = TextRule {
    description: "2 to 100 letters (any script), spaces, hyphens, apostrophes.",
    min_length: 2,
    max_length: 100,
    pattern: r"^(?![\s\S]*[^\w '’-])(?![\s\S]*[\d_])(?=[\s\S]*[^\W\d_])",
    format: None,
};

pub(crate) fn password() -> Object {
    PASSWORD.schema(false)
}

pub(crate) fn optional_password() -> Object {
    PASSWORD.schema(true)
}

pub(crate) fn name() -> Object {
    NAME.schema(false)
}

pub(crate) fn optional_name() -> Object {
    NAME.schema(true)
}
