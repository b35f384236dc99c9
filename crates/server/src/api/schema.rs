//! OpenAPI pieces that derive cannot produce: the schema of an amount of credits
//! (a decimal string, or a JSON number on input), the string enums of agora-core,
//! and the error answers every endpoint documents.

use agora_core::{AgentStatus, BidStatus, DeathReason, ExecutionStatus, PromptStatus, Resource};
use std::collections::BTreeMap;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

/// An amount of credits: a decimal with at most 6 decimals. Sent by the server as a
/// string (`"12.5"`); accepted as a string or a JSON number.
pub struct CreditAmount;

impl PartialSchema for CreditAmount {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^-?[0-9]{1,13}(\.[0-9]{1,6})?$"))
                    .examples(["12.5"]),
            )
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .description(Some(
                "Credits as a decimal with at most 6 decimals; the server sends a string, \
                 clients may send a string or a number",
            ))
            .into()
    }
}
impl ToSchema for CreditAmount {}

/// A positive amount of credits, as a request sends it: a decimal string with at
/// most 6 decimals, or a JSON number, greater than zero.
pub struct PositiveAmount;

impl PartialSchema for PositiveAmount {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^(?=.*[1-9])[0-9]{1,13}(\.[0-9]{1,6})?$"))
                    .examples(["12.5"]),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .exclusive_minimum(Some(0.0))
                    .maximum(Some(9_223_372_036_854.0)),
            )
            .description(Some(
                "Credits greater than zero with at most 6 decimals, as a string or a number \
                 (a number with more than 15 significant digits is refused: send a string)",
            ))
            .into()
    }
}
impl ToSchema for PositiveAmount {}

macro_rules! string_schema {
    ($name:ident, $doc:literal, $values:expr) => {
        #[doc = $doc]
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($doc))
                    .enum_values(Some($values))
                    .into()
            }
        }
        impl ToSchema for $name {}
    };
}

// The values come from agora-core, so the document cannot drift from the code.
string_schema!(AgentStatusSchema, "An agent's status.", AgentStatus::NAMES);
string_schema!(DeathReasonSchema, "Why an agent died.", DeathReason::NAMES);
string_schema!(BidStatusSchema, "A bid's status.", BidStatus::NAMES);
string_schema!(
    ExecutionStatusSchema,
    "An execution's status.",
    ExecutionStatus::NAMES
);
string_schema!(
    PromptStatusSchema,
    "A prompt's status.",
    PromptStatus::NAMES
);
string_schema!(
    ResourceSchema,
    "A resource traded in the market.",
    Resource::ALL.map(Resource::as_str)
);

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .into()
}

fn error_set(codes: &[(u16, &str)]) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    codes
        .iter()
        .map(|(code, d)| (code.to_string(), error_response(d)))
        .collect()
}

const COMMON: &[(u16, &str)] = &[
    (
        400,
        "Bad input: malformed JSON, a bad amount, bundle, query or path",
    ),
    (401, "Missing, unknown, revoked or expired token"),
    (
        403,
        "The token may not call this endpoint or act on this object",
    ),
    (404, "Unknown agent, bid, prompt or execution"),
    (408, "The request took longer than the server allows"),
    (
        409,
        "Refused by the economy's state: insufficient funds, not pending, dead, …",
    ),
    (413, "The body is larger than the server accepts"),
    (415, "The body is not sent as application/json"),
    (422, "The body's JSON does not fit the endpoint's schema"),
    (503, "The store is overloaded or shutting down; retry later"),
];

/// The error answers of every authenticated endpoint.
pub struct Errors;

impl IntoResponses for Errors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_set(COMMON)
    }
}
