//! Errors as `application/problem+json` (RFC 9457), in one place.
//!
//! The service layer returns [`ServiceError`] (an [`ErrorCode`] and a human-readable detail). Every
//! endpoint declares, with [`problem_responses!`](crate::problem_responses), an error enum listing
//! only the statuses it can return; `From<ServiceError>` picks the variant by the code's status.
//! Errors raised by the framework itself (unknown route, malformed body, missing bearer token)
//! are turned into the same shape by [`problem_from_poem_error`].

use poem::http::StatusCode;
use poem_openapi::Object;
use tracing::error;

/// `Content-Type` of every error response.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Every error the API reports, with its HTTP status and title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A query or path parameter is malformed or out of range.
    InvalidParameter,
    /// The request body is malformed or fails validation.
    InvalidBody,
    /// No valid bearer token was presented where one is required.
    Unauthenticated,
    /// The token is valid but its role does not allow this operation.
    Forbidden,
    /// The requested resource does not exist.
    NotFound,
    /// The request (its body) did not arrive within `INVENTORY_REQUEST_TIMEOUT`.
    RequestTimeout,
    /// The request body is larger than `INVENTORY_MAX_BODY_BYTES`.
    PayloadTooLarge,
    /// No route matches the request path.
    RouteNotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The body's media type is not accepted.
    UnsupportedMediaType,
    /// A conditional write lost a race with another writer.
    Conflict,
    /// The read model is still catching up with the stream, or the projector stopped.
    NotReady,
    /// A dependency (NATS) is unreachable or not configured.
    Unavailable,
    /// Too many reads of the read model are in progress (`INVENTORY_MAX_READS`): retry later.
    Overloaded,
    /// The answer was not ready within `INVENTORY_REQUEST_TIMEOUT`.
    Timeout,
    /// A bug or a failure of the read model; details are in the server log only.
    Internal,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [Self; 16] = [
        Self::InvalidParameter,
        Self::InvalidBody,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::RequestTimeout,
        Self::PayloadTooLarge,
        Self::RouteNotFound,
        Self::MethodNotAllowed,
        Self::UnsupportedMediaType,
        Self::Conflict,
        Self::NotReady,
        Self::Unavailable,
        Self::Overloaded,
        Self::Timeout,
        Self::Internal,
    ];

    /// The HTTP status of the code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidParameter | Self::InvalidBody => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Conflict => StatusCode::CONFLICT,
            Self::NotReady | Self::Unavailable | Self::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable name (`invalid_parameter`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidParameter => "invalid_parameter",
            Self::InvalidBody => "invalid_body",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::RequestTimeout => "request_timeout",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Conflict => "conflict",
            Self::NotReady => "not_ready",
            Self::Unavailable => "unavailable",
            Self::Overloaded => "overloaded",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
        }
    }

    /// Short, fixed summary of the problem type.
    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidParameter => "Invalid parameter",
            Self::InvalidBody => "Invalid request body",
            Self::Unauthenticated => "Authentication required",
            Self::Forbidden => "Not allowed for this token",
            Self::NotFound => "Not found",
            Self::RequestTimeout => "Request not received in time",
            Self::PayloadTooLarge => "Request body too large",
            Self::RouteNotFound => "No such route",
            Self::MethodNotAllowed => "Method not allowed",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::Conflict => "Conflicting write",
            Self::NotReady => "Not ready",
            Self::Unavailable => "Service unavailable",
            Self::Overloaded => "Too many reads in progress",
            Self::Timeout => "Answer not ready in time",
            Self::Internal => "Internal error",
        }
    }

    /// The code for a framework error of a given status.
    fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Self::InvalidParameter,
            StatusCode::UNAUTHORIZED => Self::Unauthenticated,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::NOT_FOUND => Self::RouteNotFound,
            StatusCode::REQUEST_TIMEOUT => Self::RequestTimeout,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::CONFLICT => Self::Conflict,
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable,
            StatusCode::GATEWAY_TIMEOUT => Self::Timeout,
            _ => Self::Internal,
        }
    }

    /// Seconds a client should wait before retrying (`Retry-After`), for the 503 codes.
    pub fn retry_after(self) -> Option<u64> {
        match self {
            Self::Overloaded => Some(OVERLOADED_RETRY_AFTER_SECS),
            Self::NotReady | Self::Unavailable => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        }
    }
}

/// `Retry-After` of a read shed because too many are in progress.
pub const OVERLOADED_RETRY_AFTER_SECS: u64 = 1;
/// `Retry-After` while not ready or while NATS is unreachable.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// A problem report (RFC 9457), sent as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct Problem {
    /// URI reference identifying the problem type (`urn:asset-inventory:problem:<code>`).
    #[oai(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type; the same for every occurrence.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence, and how to fix it.
    pub detail: String,
    /// Machine-readable problem code, e.g. `invalid_parameter`.
    pub code: String,
    /// The offending parameter or body field, when there is one.
    #[oai(skip_serializing_if_is_none)]
    pub parameter: Option<String>,
}

impl Problem {
    /// A problem of `code` with `detail`.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("urn:asset-inventory:problem:{}", code.as_str()),
            title: code.title().to_owned(),
            status: code.status().as_u16(),
            detail: detail.into(),
            code: code.as_str().to_owned(),
            parameter: None,
        }
    }

    /// A complete `application/problem+json` response.
    pub fn into_response(self) -> poem::Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = poem_openapi::types::ToJSON::to_json_string(&self);
        let retry_after = ErrorCode::ALL
            .iter()
            .find(|c| c.as_str() == self.code)
            .and_then(|c| c.retry_after());
        let mut resp = poem::Response::builder()
            .status(status)
            .content_type(PROBLEM_CONTENT_TYPE);
        if let Some(secs) = retry_after {
            resp = resp.header(poem::http::header::RETRY_AFTER, secs);
        }
        resp.body(body)
    }
}

/// An error of the service layer: what kind, and what to tell the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code:?}: {detail}")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub detail: String,
    pub parameter: Option<String>,
}

impl ServiceError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            parameter: None,
        }
    }

    /// A bad query or path parameter; `detail` should name the allowed values.
    pub fn invalid_parameter(parameter: &str, detail: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidParameter,
            detail: detail.into(),
            parameter: Some(parameter.to_owned()),
        }
    }

    /// A bad body field.
    pub fn invalid_body(field: &str, detail: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidBody,
            detail: detail.into(),
            parameter: Some(field.to_owned()),
        }
    }

    /// An internal failure: logged with its cause, reported without it.
    pub fn internal(context: &str, cause: &dyn std::fmt::Display) -> Self {
        error!(error = %cause, context, "internal error");
        Self::new(
            ErrorCode::Internal,
            format!("{context} failed; the cause is in the server log"),
        )
    }

    /// The problem report of this error.
    pub fn to_problem(&self) -> Problem {
        Problem {
            parameter: self.parameter.clone(),
            ..Problem::new(self.code, self.detail.clone())
        }
    }
}

/// Why a parameter type refused a value (in its `ParseFromParameter`, see [`crate::params`]):
/// the end of a sentence whose subject is the parameter, e.g. ` must be true or false`. The
/// problem's detail is the parameter's name followed by it ([`problem_from_poem_error`]), so
/// that one type serves parameters of several names.
#[derive(Debug)]
pub struct Refusal {
    /// The parameter's name where the framework does not know it: poem-openapi names path
    /// parameters by position (`param0`), so a path parameter's type names itself.
    pub name: Option<&'static str>,
    /// The end of the sentence.
    pub rest: String,
}

/// Where a [`Refusal`] starts in the parser's message (which poem-openapi prefixes with the
/// type's name), and where the name it carries ends.
const REFUSAL: (&str, char) = ("refused: the parameter `", '`');

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (start, end) = REFUSAL;
        write!(f, "{start}{}{end}{}", self.name.unwrap_or(""), self.rest)
    }
}

/// The name and the detail of a refused parameter (`name` as the framework knows it): from a
/// [`Refusal`], or the allowed values of a parameter enum (the parser's own message names
/// types rather than values).
pub(crate) fn parameter_problem(name: &str, reason: &str) -> (String, Option<String>) {
    let (start, end) = REFUSAL;
    if let Some((named, rest)) = reason
        .split_once(start)
        .and_then(|(_, refusal)| refusal.split_once(end))
    {
        let name = if named.is_empty() { name } else { named };
        return (name.to_owned(), Some(format!("{name}{rest}")));
    }
    let detail = crate::model::choices_in(reason)
        .map(|values| format!("{name} must be one of {}", values.join(", ")));
    (name.to_owned(), detail)
}

/// Converts an error raised by poem or poem-openapi (not by a handler) into a problem response.
/// Errors that already carry a response (the endpoints' typed errors) are returned as they are.
pub fn problem_from_poem_error(err: poem::Error) -> poem::Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let code = ErrorCode::for_status(status);
    let mut problem = Problem::new(code, err.to_string());
    problem.status = status.as_u16();
    let param = match (
        err.downcast_ref::<poem_openapi::error::ParseParamError>(),
        err.downcast_ref::<poem_openapi::error::ParsePathError>(),
    ) {
        (Some(p), _) => Some((p.name, p.reason.as_str())),
        (_, Some(p)) => Some((p.name, p.reason.as_str())),
        (None, None) => None,
    };
    if let Some((name, reason)) = param {
        let (name, detail) = parameter_problem(name, reason);
        problem.parameter = Some(name);
        if let Some(detail) = detail {
            problem.detail = detail;
        }
    }
    if let Some(p) = err.downcast_ref::<poem_openapi::error::ParseRequestPayloadError>() {
        let mut detail = format!("the request body is not valid: {}", p.reason);
        if let Some(values) = crate::model::choices_in(&p.reason) {
            detail.push_str(&format!(" (allowed: {})", values.join(", ")));
        }
        problem = Problem::new(ErrorCode::InvalidBody, detail);
    }
    if code == ErrorCode::Unauthenticated {
        problem.detail = "a valid bearer token is required (Authorization: Bearer <token>)".into();
    }
    if code == ErrorCode::RouteNotFound {
        problem.detail = "no route matches this path; the API is described at /openapi.json".into();
    }
    if code == ErrorCode::Internal {
        error!(error = %err, status = status.as_u16(), "unhandled error");
        problem.detail = "the request failed; the cause is in the server log".into();
    }
    problem.into_response()
}

/// Declares an endpoint's error responses: each listed `status => Variant` becomes an
/// `application/problem+json` response in the spec; `503 => Unavailable` (with `Retry-After`:
/// any read may be shed when too many are in progress) and `500 => Internal` are always added.
/// A [`ServiceError`] whose status the endpoint does not list is logged and reported as 500.
#[macro_export]
macro_rules! problem_responses {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[doc = $doc:literal])* $status:literal => $variant:ident),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, poem_openapi::ApiResponse)]
        $vis enum $name {
            $(
                $(#[doc = $doc])*
                #[oai(status = $status, content_type = "application/problem+json")]
                $variant(poem_openapi::payload::Json<$crate::problem::Problem>),
            )*
            /// Unavailable: too many reads in progress (`overloaded`), the read model not ready
            /// (`not_ready`) or NATS unreachable (`unavailable`); retry after `Retry-After`
            /// seconds.
            #[oai(status = 503, content_type = "application/problem+json")]
            Unavailable(
                poem_openapi::payload::Json<$crate::problem::Problem>,
                /// Seconds to wait before retrying.
                #[oai(header = "Retry-After")]
                Option<u64>,
            ),
            /// Internal error (details in the server log).
            #[oai(status = 500, content_type = "application/problem+json")]
            Internal(poem_openapi::payload::Json<$crate::problem::Problem>),
        }

        impl From<$crate::problem::ServiceError> for $name {
            fn from(e: $crate::problem::ServiceError) -> Self {
                let problem = e.to_problem();
                match problem.status {
                    503 => Self::Unavailable(poem_openapi::payload::Json(problem), e.code.retry_after()),
                    $($status => Self::$variant(poem_openapi::payload::Json(problem)),)*
                    500 => Self::Internal(poem_openapi::payload::Json(problem)),
                    other => {
                        tracing::error!(
                            status = other,
                            endpoint = stringify!($name),
                            detail = %problem.detail,
                            "endpoint cannot report this status; answering 500"
                        );
                        Self::Internal(poem_openapi::payload::Json($crate::problem::Problem::new(
                            $crate::problem::ErrorCode::Internal,
                            "the request failed; the cause is in the server log",
                        )))
                    }
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_name_and_a_client_or_server_status() {
        let all = ErrorCode::ALL;
        let names: std::collections::HashSet<_> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), all.len());
        for c in all {
            assert!(c.status().is_client_error() || c.status().is_server_error());
        }
    }

    crate::problem_responses! {
        enum Sample {
            /// Bad input.
            400 => BadRequest,
        }
    }

    #[test]
    fn unlisted_statuses_become_500_and_listed_ones_keep_their_detail() {
        let bad = Sample::from(ServiceError::invalid_parameter("limit", "too big"));
        match bad {
            Sample::BadRequest(p) => {
                assert_eq!(p.0.status, 400);
                assert_eq!(p.0.detail, "too big");
                assert_eq!(p.0.parameter.as_deref(), Some("limit"));
            }
            other => panic!("{other:?}"),
        }
        let conflict = Sample::from(ServiceError::new(ErrorCode::Conflict, "raced"));
        match conflict {
            Sample::Internal(p) => {
                assert_eq!(p.0.status, 500);
                assert!(!p.0.detail.contains("raced"));
            }
            other => panic!("{other:?}"),
        }
    }

    async fn problem_of(err: impl Into<poem::Error>) -> serde_json::Value {
        let body = problem_from_poem_error(err.into())
            .into_body()
            .into_string()
            .await
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    #[tokio::test]
    async fn refused_parameters_are_named_in_the_detail() {
        use poem_openapi::error::{ParseParamError, ParsePathError};
        use poem_openapi::types::ParseError;
        let reason = |name, rest: &str| {
            ParseError::<bool>::custom(Refusal {
                name,
                rest: rest.to_owned(),
            })
            .into_message()
        };
        let p = problem_of(ParseParamError {
            name: "kind",
            reason: reason(None, " must be short (got \"`x`\")"),
        })
        .await;
        assert_eq!(p["detail"], "kind must be short (got \"`x`\")");
        assert_eq!(p["parameter"], "kind");
        assert_eq!(p["status"], 400);
        // Path parameters are named by position: their type names them.
        let p = problem_of(ParsePathError {
            name: "param0",
            reason: reason(Some("key"), ": no"),
        })
        .await;
        assert_eq!(p["detail"], "key: no");
        assert_eq!(p["parameter"], "key");
        // An enum's parser names its type; the detail names the values.
        let p = problem_of(ParseParamError {
            name: "provider",
            reason: r#"failed to parse "AccountProvider": bad"#.to_owned(),
        })
        .await;
        assert_eq!(p["detail"], "provider must be one of aws, gcp, azure");
    }

    #[test]
    fn framework_errors_become_problems() {
        let resp = problem_from_poem_error(poem::error::NotFoundError.into());
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.content_type(), Some(PROBLEM_CONTENT_TYPE));
    }
}
