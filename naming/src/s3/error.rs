//! Every way an S3 request fails, as the error codes S3 clients know, and
//! the one table mapping each to its HTTP status. Errors of the naming
//! server's own operations (`ApiError`) are translated here once.

use std::fmt;

use common::name::NameError;
use common::server::Reply;

use crate::error::ApiError;
use crate::s3::encoding::xml_escape;

/// An S3 error code (the `<Code>` clients switch on) with its message.
#[derive(Debug)]
pub struct S3Error {
    pub code: Code,
    pub message: String,
    /// The metadata store could not say whether the change was made
    /// (`ApiError::MetadataUnavailable`): what it refers to must stay.
    pub undecided: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    BadDigest,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    EntityTooLarge,
    EntityTooSmall,
    IncompleteBody,
    InsufficientStorage,
    InternalError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidBucketName,
    InvalidDigest,
    InvalidPart,
    InvalidPartOrder,
    InvalidRange,
    InvalidRequest,
    KeyTooLongError,
    MalformedXML,
    MetadataTooLarge,
    MethodNotAllowed,
    MissingContentLength,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    NotImplemented,
    PreconditionFailed,
    RequestTimeTooSkewed,
    ServiceUnavailable,
    SignatureDoesNotMatch,
    XAmzContentSHA256Mismatch,
}

impl Code {
    /// The only status table of the S3 API.
    pub fn status(self) -> u16 {
        match self {
            Code::AuthorizationHeaderMalformed
            | Code::AuthorizationQueryParametersError
            | Code::BadDigest
            | Code::EntityTooLarge
            | Code::EntityTooSmall
            | Code::IncompleteBody
            | Code::InvalidArgument
            | Code::InvalidBucketName
            | Code::InvalidDigest
            | Code::InvalidPart
            | Code::InvalidPartOrder
            | Code::InvalidRequest
            | Code::KeyTooLongError
            | Code::MalformedXML
            | Code::MetadataTooLarge
            | Code::XAmzContentSHA256Mismatch => 400,
            Code::AccessDenied
            | Code::InvalidAccessKeyId
            | Code::RequestTimeTooSkewed
            | Code::SignatureDoesNotMatch => 403,
            Code::NoSuchBucket | Code::NoSuchKey | Code::NoSuchUpload => 404,
            Code::MethodNotAllowed => 405,
            Code::BucketAlreadyOwnedByYou | Code::BucketNotEmpty => 409,
            Code::MissingContentLength => 411,
            Code::PreconditionFailed => 412,
            Code::InvalidRange => 416,
            Code::InternalError => 500,
            Code::NotImplemented => 501,
            Code::ServiceUnavailable => 503,
            // Not an AWS code (AWS never fills up); the status the native
            // API answers a full cluster with, which SDKs do not retry.
            Code::InsufficientStorage => 507,
        }
    }
}

impl S3Error {
    pub fn new(code: Code, message: impl Into<String>) -> S3Error {
        S3Error {
            code,
            message: message.into(),
            undecided: false,
        }
    }

    /// The XML error document, `resource` the request's path.
    pub fn reply(&self, resource: &str, request_id: &str) -> Reply {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{:?}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{request_id}</RequestId></Error>",
            self.code,
            xml_escape(&self.message),
            xml_escape(resource),
        );
        Reply::bytes(self.code.status(), "application/xml", body.into_bytes())
    }

    /// A key the Harbour name rules refuse.
    pub fn bad_key(err: &NameError) -> S3Error {
        match err {
            NameError::TooLong { .. } => S3Error::new(
                Code::KeyTooLongError,
                format!("bucket and key together: {err}"),
            ),
            err => S3Error::new(
                Code::InvalidArgument,
                format!("a Harbour file cannot have this key: {err}"),
            ),
        }
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// A refusal no caller expected (see `ApiError`'s).
impl From<crate::metadata::change::Refusal> for S3Error {
    fn from(refusal: crate::metadata::change::Refusal) -> S3Error {
        S3Error::from(ApiError::from(refusal))
    }
}

impl From<ApiError> for S3Error {
    fn from(err: ApiError) -> S3Error {
        let code = match &err {
            ApiError::BadName(name) => return S3Error::bad_key(name),
            ApiError::NotFound { .. } => Code::NoSuchKey,
            ApiError::BodyTooLarge { .. } => Code::EntityTooLarge,
            ApiError::BodyIncomplete { .. } => Code::IncompleteBody,
            ApiError::LengthRequired => Code::MissingContentLength,
            ApiError::InsufficientStorage { .. } => Code::InsufficientStorage,
            ApiError::NotEnoughServers { .. }
            | ApiError::ReplicasUnavailable { .. }
            | ApiError::StorageTimeout { .. }
            | ApiError::StorageFailed { .. }
            | ApiError::ChunkUnavailable { .. }
            | ApiError::MetadataUnavailable { .. } => Code::ServiceUnavailable,
            ApiError::Unauthorized(_) | ApiError::Forbidden(_) => Code::AccessDenied,
            ApiError::BadRequest(_) => Code::InvalidRequest,
            _ => Code::InternalError,
        };
        S3Error {
            undecided: err.undecided(),
            ..S3Error::new(code, err.to_string())
        }
    }
}

impl crate::upload::Undecided for S3Error {
    fn undecided(&self) -> bool {
        self.undecided
    }
}
