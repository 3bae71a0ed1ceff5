//! The admin API's error type: every failure is a JSON body `{"error": "<sentence>",
//! "field": "<name>"?}` with a status that says what kind of failure it is (STYLE
//! example 3: an error enum turned into a response in one place; internals are logged,
//! never sent).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_directory::DirectoryError;
use keel_net::services::ServiceError;
use keel_store::StoreError;
use serde::Serialize;

/// An admin API failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is not valid; `field` names the offending input when known.
    #[error("{message}")]
    Invalid {
        /// A sentence the administrator can act on.
        message: String,
        /// The request field at fault.
        field: Option<String>,
    },
    /// 401: no valid session (or wrong credentials at sign-in).
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: signed in (or not) but not allowed to do this from here.
    #[error("{0}")]
    Forbidden(String),
    /// 404: the object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 409: the change conflicts with existing data (duplicate name, object in use, …).
    #[error("{message}")]
    Conflict {
        /// A sentence the administrator can act on.
        message: String,
        /// The request field at fault.
        field: Option<String>,
    },
    /// 415: a request body that is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: too many failed sign-ins from this address.
    #[error("{0}")]
    TooManyRequests(String),
    /// 500: something failed inside the server. The text is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias of the admin API.
pub type ApiResult<T> = Result<T, ApiError>;

/// The JSON error body.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

/// What an internal error looks like to the client.
const INTERNAL_MESSAGE: &str =
    "the server could not complete the request; the error log has the details";

impl ApiError {
    /// A 400 naming a field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// A 400 about the request as a whole.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            field: None,
        }
    }

    /// A 409 about the request as a whole.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
            field: None,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// For objects named in a request body (a group's members, a user's domain): "does not
    /// exist" is then a validation error of that body, not a missing resource.
    pub(crate) fn not_found_is_invalid(self) -> Self {
        match self {
            Self::NotFound(m) => Self::Invalid {
                message: m,
                field: None,
            },
            other => other,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, field) = match &self {
            Self::Internal(detail) => {
                // Logged once here; the client gets a generic sentence (STYLE example 3).
                tracing::error!("admin API: {detail}");
                (INTERNAL_MESSAGE, None)
            }
            Self::Invalid { message, field } | Self::Conflict { message, field } => {
                (message.as_str(), field.as_deref())
            }
            Self::Unauthenticated(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::UnsupportedMediaType(m)
            | Self::TooManyRequests(m) => (m.as_str(), None),
        };
        (
            status,
            Json(ErrorBody {
                error: message,
                field,
            }),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => Self::conflict(
                "another change to the same object was saved at the same time; reload and try again",
            ),
            StoreError::NotFound(what) => Self::NotFound(format!("{what} does not exist")),
            StoreError::Aborted(m) => Self::bad_request(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> Self {
        use DirectoryError as D;
        let msg = e.to_string();
        let inv = |field: &str| Self::Invalid {
            message: msg.clone(),
            field: Some(field.to_owned()),
        };
        let conflict = |field: Option<&str>| Self::Conflict {
            message: msg.clone(),
            field: field.map(str::to_owned),
        };
        match e {
            D::Store(s) => s.into(),
            D::Corrupt { .. } | D::Hashing(_) => Self::Internal(msg),
            D::InvalidDomainName(_) => inv("name"),
            D::InvalidAddress(_) | D::InvalidLoginName(_) => inv("address"),
            D::AddressOutsideDomain { .. } => inv("addresses"),
            D::InvalidAliasName(_) => inv("name"),
            D::InvalidAliasTarget(_) => inv("targets"),
            D::WeakPassword(_) => inv("password"),
            D::UnsupportedHash => inv("password_hash"),
            D::InvalidIpGroup(_) | D::InvalidTimeInterval(_) => inv("items"),
            D::Invalid(_) => Self::bad_request(msg),
            D::InvalidSetting { field, .. } => inv(&field),
            D::NoSuchDomain(_)
            | D::NoSuchUser(_)
            | D::NoSuchGroup(_)
            | D::NoSuchTemplate(_)
            | D::NoSuchAlias(_)
            | D::NoSuchIpGroup(_)
            | D::NoSuchTimeInterval(_) => Self::NotFound(msg),
            D::UserExists(_) => conflict(Some("address")),
            D::DomainNameTaken { .. }
            | D::GroupExists(_)
            | D::IpGroupExists(_)
            | D::TimeIntervalExists(_) => conflict(Some("name")),
            D::AddressTaken { .. } => conflict(Some("addresses")),
            D::IpAlreadyBound { .. } => conflict(Some("bound_ip")),
            D::DomainNotEmpty { .. }
            | D::PrimaryDomain(_)
            | D::UserLimitReached { .. }
            | D::LastAdmin { .. }
            | D::IpGroupInUse { .. }
            | D::BuiltInIpGroup(_) => conflict(None),
            // `DirectoryError` may grow; an unknown kind is shown as a plain 400.
            #[allow(unreachable_patterns)]
            _ => Self::bad_request(msg),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unknown { .. } => Self::NotFound(e.to_string()),
            ServiceError::NotAvailable(_) | ServiceError::PortOverflow { .. } => {
                Self::conflict(e.to_string())
            }
            ServiceError::Store(s) => s.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<keel_net::certs::CertError> for ApiError {
    fn from(e: keel_net::certs::CertError) -> Self {
        use keel_net::certs::CertError as C;
        match e {
            C::Invalid { field, message } => Self::invalid(field, message),
            C::NotFound(_) => Self::NotFound(e.to_string()),
            C::Refused(m) => Self::conflict(m),
            C::Store(s) => s.into(),
        }
    }
}
