//! AWS's patterns and length limits for the values users write, as the CRD schema enforces them.
//!
//! They follow the HealthLake service model. AWS's patterns are unanchored; the schema anchors
//! them so that a value must match as a whole. Kubernetes evaluates them with RE2, so they avoid
//! look-arounds.

/// `datastoreName`: letters, spaces, digits and `_.:/=+-%@`.
pub const DATASTORE_NAME: &str = r"^[\p{L}\p{Z}\p{N}_.:/=+\-%@]*$";
/// Longest `datastoreName` AWS accepts.
pub const DATASTORE_NAME_MAX: u32 = 256;

/// `datastoreId`: AWS generates 32 hex characters; the model allows the job-name alphabet.
pub const DATASTORE_ID: &str = r"^[\p{L}\p{Z}\p{N}_.:/=+\-%@]*$";
/// Longest datastore id AWS accepts.
pub const DATASTORE_ID_MAX: u32 = 32;

/// `jobName` of import and export jobs.
pub const JOB_NAME: &str = r"^[\p{L}\p{Z}\p{N}_.:/=+\-%@]*$";
/// Longest `jobName` AWS accepts.
pub const JOB_NAME_MAX: u32 = 64;

/// An `s3://bucket/prefix` URI.
pub const S3_URI: &str = r"^s3://[a-z0-9][\.\-a-z0-9]{1,61}[a-z0-9](/.*)?$";
/// Longest S3 URI AWS accepts.
pub const S3_URI_MAX: u32 = 1024;

/// The IAM role HealthLake assumes to read or write S3.
pub const IAM_ROLE_ARN: &str = r"^arn:aws(-[^:]+)?:iam::[0-9]{12}:role/.+$";
/// Shortest IAM role ARN AWS accepts.
pub const IAM_ROLE_ARN_MIN: u32 = 20;
/// Longest IAM role ARN AWS accepts.
pub const IAM_ROLE_ARN_MAX: u32 = 2048;

/// A KMS key id, key ARN, alias or alias ARN (AWS's `EncryptionKeyID`), for datastore encryption
/// and for the objects jobs write to S3.
pub const KMS_KEY_ID: &str = r"^(arn:aws((-us-gov)|(-iso)|(-iso-b)|(-cn))?:kms:)?([a-z]{2}-[a-z]+(-[a-z]+)?-\d:)?(\d{12}:)?(((key/)?[a-zA-Z0-9-_]+)|(alias/[a-zA-Z0-9:/_-]+))$";
/// Longest KMS key id AWS accepts.
pub const KMS_KEY_ID_MAX: u32 = 400;

/// The Lambda function that decodes SMART on FHIR access tokens.
pub const LAMBDA_ARN: &str = r"^arn:aws:lambda:[a-z]{2}-[a-z]+-\d{1}:\d{12}:function:[a-zA-Z0-9\-_\.]+(:(\$LATEST|[a-zA-Z0-9\-_]+))?$";
/// Shortest Lambda ARN AWS accepts.
pub const LAMBDA_ARN_MIN: u32 = 49;
/// Longest Lambda ARN AWS accepts.
pub const LAMBDA_ARN_MAX: u32 = 256;

/// A tag key: letters, spaces, digits and `_.:/=+-@`.
pub const TAG_KEY: &str = r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$";
/// Longest tag key AWS accepts.
pub const TAG_KEY_MAX: u32 = 128;
/// A tag value: the same alphabet as keys, possibly empty.
pub const TAG_VALUE: &str = r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$";
/// Longest tag value AWS accepts.
pub const TAG_VALUE_MAX: u32 = 256;
/// AWS allows 50 tags on a datastore; the operator keeps two for its owner tags.
pub const USER_TAGS_MAX: u32 = 48;

/// An AWS region name such as `us-east-1`.
pub const REGION: &str = r"^[a-z]{2}(-[a-z]+)+-\d+$";

/// The name of a Kubernetes object (a DNS-1123 subdomain), such as a referenced FHIRDatastore.
pub const OBJECT_NAME: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Longest Kubernetes object name.
pub const OBJECT_NAME_MAX: u32 = 253;
/// A Kubernetes namespace name (a DNS-1123 label).
pub const NAMESPACE: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest Kubernetes namespace name.
pub const NAMESPACE_MAX: u32 = 63;

/// An endpoint of the SMART on FHIR authorization server: an absolute http(s) URL.
pub const SMART_ENDPOINT_URL: &str = r"^https?://[^\s/?#]+[^\s]*$";
/// Longest SMART endpoint URL the schema accepts.
pub const SMART_ENDPOINT_URL_MAX: u32 = 2048;
