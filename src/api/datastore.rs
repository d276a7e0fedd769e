//! `FHIRDatastore`: one Amazon HealthLake FHIR datastore.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::ErrorCause;
use super::open_enum::open_enum;
use super::patterns;

/// The desired state of a HealthLake FHIR datastore.
///
/// Everything except `tags` and `deletionPolicy` is fixed when the datastore is created, because
/// HealthLake cannot change it afterwards: to change it, create a new FHIRDatastore.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "healthlake.fhir-operator.io",
    version = "v1alpha1",
    kind = "FHIRDatastore",
    plural = "fhirdatastores",
    singular = "fhirdatastore",
    shortname = "fhirds",
    category = "healthlake",
    namespaced,
    doc = "An Amazon HealthLake FHIR datastore, created, kept in sync and deleted by the operator.",
    status = "FHIRDatastoreStatus",
    validation = Rule::new("has(self.spec.region) == has(oldSelf.spec.region) || !has(oldSelf.status) || !has(oldSelf.status.region) || (has(self.spec.region) ? self.spec.region == oldSelf.status.region : oldSelf.spec.region == oldSelf.status.region)")
        .message("spec.region cannot be added or removed after creation, except as the region the datastore is in (status.region): create a new FHIRDatastore in the other region")
        .field_path(".spec.region"),
    validation = Rule::new("has(self.spec.datastoreName) == has(oldSelf.spec.datastoreName) || (has(self.spec.datastoreName) ? self.spec.datastoreName == self.metadata.name : oldSelf.spec.datastoreName == self.metadata.name)")
        .message("spec.datastoreName cannot be added or removed after creation, except as metadata.name, the name it means when omitted: create a new FHIRDatastore instead")
        .field_path(".spec.datastoreName"),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.datastoreStatus"}"#,
    printcolumn = r#"{"name":"Datastore ID","type":"string","jsonPath":".status.datastoreId"}"#,
    printcolumn = r#"{"name":"Deletion","type":"string","jsonPath":".status.deletionPolicy"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","priority":1,"jsonPath":".status.datastoreEndpoint"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.sseConfiguration) == has(oldSelf.sseConfiguration) || (has(self.sseConfiguration) ? self.sseConfiguration.kmsEncryptionConfig.cmkType == 'AWS_OWNED_KMS_KEY' : oldSelf.sseConfiguration.kmsEncryptionConfig.cmkType == 'AWS_OWNED_KMS_KEY')")
        .message("sseConfiguration cannot be added or removed after creation, except as the AWS-owned key it means when omitted: create a new FHIRDatastore instead")
        .field_path(".sseConfiguration"),
    validation = Rule::new("has(self.preloadDataConfig) == has(oldSelf.preloadDataConfig)")
        .message("preloadDataConfig cannot be added or removed after creation: create a new FHIRDatastore instead")
        .field_path(".preloadDataConfig"),
    validation = Rule::new("has(self.identityProviderConfiguration) == has(oldSelf.identityProviderConfiguration) || (has(self.identityProviderConfiguration) ? (self.identityProviderConfiguration.authorizationStrategy == 'AWS_AUTH' && !has(self.identityProviderConfiguration.metadata) && !has(self.identityProviderConfiguration.idpLambdaArn) && !(has(self.identityProviderConfiguration.fineGrainedAuthorizationEnabled) && self.identityProviderConfiguration.fineGrainedAuthorizationEnabled)) : (oldSelf.identityProviderConfiguration.authorizationStrategy == 'AWS_AUTH' && !has(oldSelf.identityProviderConfiguration.metadata) && !has(oldSelf.identityProviderConfiguration.idpLambdaArn) && !(has(oldSelf.identityProviderConfiguration.fineGrainedAuthorizationEnabled) && oldSelf.identityProviderConfiguration.fineGrainedAuthorizationEnabled)))")
        .message("identityProviderConfiguration cannot be added or removed after creation, except as the plain AWS_AUTH it means when omitted: create a new FHIRDatastore instead")
        .field_path(".identityProviderConfiguration"),
    validation = Rule::new("has(self.datastoreId) == has(oldSelf.datastoreId)")
        .message("datastoreId cannot be added or removed after creation: create a new FHIRDatastore to adopt a datastore")
        .field_path(".datastoreId"),
)]
pub struct FHIRDatastoreSpec {
    /// Name of the datastore in HealthLake. Defaults to the object's `metadata.name`.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = patterns::DATASTORE_NAME_MAX), regex(pattern = patterns::DATASTORE_NAME))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("datastoreName is immutable: create a new FHIRDatastore to use another name"))]
    pub datastore_name: Option<String>,

    /// FHIR release the datastore serves. Only `R4` exists. Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("datastoreTypeVersion is immutable: create a new FHIRDatastore for another FHIR version"))]
    pub datastore_type_version: FhirVersion,

    /// How HealthLake encrypts the datastore at rest. Omit it for an AWS-owned key. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("sseConfiguration is immutable: create a new FHIRDatastore to change its encryption"))]
    pub sse_configuration: Option<SseConfiguration>,

    /// Loads the open-source Synthea sample data into the new datastore. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("preloadDataConfig is immutable: it only applies when the datastore is created"))]
    pub preload_data_config: Option<PreloadDataConfig>,

    /// How clients authenticate to the datastore's FHIR endpoint (SMART on FHIR or AWS SigV4).
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("identityProviderConfiguration is immutable: create a new FHIRDatastore to change how clients authenticate"))]
    pub identity_provider_configuration: Option<IdentityProviderConfiguration>,

    /// Tags on the datastore in AWS, kept in sync in both directions: tags added, changed or
    /// removed here are added, changed or removed in AWS, and changes made in AWS are undone.
    /// Keys may not start with `healthlake.fhir-operator.io/` (the operator's own) or `aws:`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "tags_schema")]
    #[x_kube(
        validation = Rule::new(r"self.all(k, size(k) >= 1 && size(k) <= 128 && k.matches(r'^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$'))")
            .message("tags keys must be 1 to 128 characters of letters, digits, spaces and _.:/=+-@: rename the tag"),
        validation = Rule::new("self.all(k, !k.startsWith('healthlake.fhir-operator.io/'))")
            .message("tags keys may not start with healthlake.fhir-operator.io/, the prefix of the operator's own tags: choose another key"),
        validation = Rule::new("self.all(k, !k.lowerAscii().startsWith('aws:'))")
            .message("tags keys may not start with aws:, which AWS reserves for its own tags: choose another key"),
    )]
    pub tags: BTreeMap<String, String>,

    /// What happens in AWS when this object is deleted: `Delete` deletes the datastore and all
    /// its data; `Retain` leaves the datastore in AWS untouched. When unset, a datastore the
    /// operator created is deleted and an adopted one (`datastoreId`) is retained;
    /// `status.deletionPolicy` shows the policy in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// Adopt this existing datastore instead of creating one: the operator reports its status,
    /// adds the spec's tags and removes only tags it set itself (never `aws:` tags or tags set by
    /// others), and deletes the datastore only if `deletionPolicy` is `Delete`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = patterns::DATASTORE_ID_MAX), regex(pattern = patterns::DATASTORE_ID))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("datastoreId is immutable: create a new FHIRDatastore to adopt another datastore"))]
    pub datastore_id: Option<String>,

    /// AWS region of the datastore, such as `us-east-1`. Defaults to the operator's region.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), regex(pattern = patterns::REGION))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("region is immutable: create a new FHIRDatastore in the other region"))]
    pub region: Option<String>,
}

fn tags_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": patterns::USER_TAGS_MAX,
        "additionalProperties": {
            "type": "string",
            "maxLength": patterns::TAG_VALUE_MAX,
            "pattern": patterns::TAG_VALUE,
        },
    })
}

/// FHIR release of a datastore.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum FhirVersion {
    /// FHIR R4.
    #[default]
    R4,
}

/// Server-side encryption of the datastore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SseConfiguration {
    /// The KMS key that encrypts the datastore.
    pub kms_encryption_config: KmsEncryptionConfig,
}

/// The KMS key that encrypts a datastore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.cmkType != 'CUSTOMER_MANAGED_KMS_KEY' || has(self.kmsKeyId)")
        .message("kmsKeyId is required when cmkType is CUSTOMER_MANAGED_KMS_KEY: name the key, or use AWS_OWNED_KMS_KEY")
        .field_path(".kmsKeyId"),
    validation = Rule::new("self.cmkType != 'AWS_OWNED_KMS_KEY' || !has(self.kmsKeyId)")
        .message("kmsKeyId must be omitted when cmkType is AWS_OWNED_KMS_KEY: use CUSTOMER_MANAGED_KMS_KEY to bring your own key")
        .field_path(".kmsKeyId"),
)]
pub struct KmsEncryptionConfig {
    /// `CUSTOMER_MANAGED_KMS_KEY` (bring your own key, named in `kmsKeyId`) or
    /// `AWS_OWNED_KMS_KEY`.
    pub cmk_type: CmkType,
    /// The customer-managed KMS key: key id, key ARN, alias or alias ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = patterns::KMS_KEY_ID_MAX), regex(pattern = patterns::KMS_KEY_ID))]
    pub kms_key_id: Option<String>,
}

/// Who owns the KMS key that encrypts a datastore.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum CmkType {
    /// A key in the user's own account, named in `kmsKeyId`.
    #[serde(rename = "CUSTOMER_MANAGED_KMS_KEY")]
    CustomerManagedKmsKey,
    /// A key AWS owns and manages.
    #[serde(rename = "AWS_OWNED_KMS_KEY")]
    AwsOwnedKmsKey,
}

/// Sample data to load into a new datastore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreloadDataConfig {
    /// The sample data set. Only `SYNTHEA` exists.
    pub preload_data_type: PreloadDataType,
}

/// Sample data sets HealthLake can preload.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum PreloadDataType {
    /// Synthea's synthetic patient records.
    #[serde(rename = "SYNTHEA")]
    Synthea,
}

/// How clients authenticate to the datastore's FHIR endpoint.
#[derive(Serialize, Deserialize, Clone, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.authorizationStrategy == 'AWS_AUTH' || has(self.metadata)")
        .message("metadata is required when authorizationStrategy is SMART_ON_FHIR_V1 or SMART_ON_FHIR: give the SMART configuration document")
        .field_path(".metadata"),
    validation = Rule::new("self.authorizationStrategy == 'AWS_AUTH' || has(self.idpLambdaArn)")
        .message("idpLambdaArn is required when authorizationStrategy is SMART_ON_FHIR_V1 or SMART_ON_FHIR: name the Lambda function that decodes access tokens")
        .field_path(".idpLambdaArn"),
    validation = Rule::new("self.authorizationStrategy != 'AWS_AUTH' || !has(self.fineGrainedAuthorizationEnabled) || !self.fineGrainedAuthorizationEnabled")
        .message("fineGrainedAuthorizationEnabled requires a SMART on FHIR authorizationStrategy: use SMART_ON_FHIR_V1 or SMART_ON_FHIR, or remove fineGrainedAuthorizationEnabled")
        .field_path(".fineGrainedAuthorizationEnabled"),
)]
pub struct IdentityProviderConfiguration {
    /// `SMART_ON_FHIR_V1` (SMART v1 scopes), `SMART_ON_FHIR` (SMART v1 and v2) or `AWS_AUTH`
    /// (AWS SigV4 only).
    pub authorization_strategy: AuthorizationStrategy,
    /// Enables SMART on FHIR fine-grained authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_grained_authorization_enabled: Option<bool>,
    /// The SMART configuration document of the authorization server, written as YAML or JSON; the
    /// operator sends it to HealthLake as JSON. HealthLake requires `authorization_endpoint`,
    /// `token_endpoint`, `grant_types_supported` (`authorization_code` and/or
    /// `client_credentials`), `capabilities` and `code_challenge_methods_supported` (with
    /// `S256`); any other SMART element (`issuer`, `jwks_uri`, ...) is passed on as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "smart_metadata_schema")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// ARN of the Lambda function that decodes the access tokens of the authorization server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = patterns::LAMBDA_ARN_MIN, max = patterns::LAMBDA_ARN_MAX), regex(pattern = patterns::LAMBDA_ARN))]
    pub idp_lambda_arn: Option<String>,
}

// `Debug` (objects reach logs through it) leaves the SMART configuration document out.
impl std::fmt::Debug for IdentityProviderConfiguration {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IdentityProviderConfiguration")
            .field("authorization_strategy", &self.authorization_strategy)
            .field(
                "fine_grained_authorization_enabled",
                &self.fine_grained_authorization_enabled,
            )
            .field(
                "metadata",
                &self
                    .metadata
                    .as_ref()
                    .map(|document| format!("<redacted, {} elements>", document.len())),
            )
            .field("idp_lambda_arn", &self.idp_lambda_arn)
            .finish()
    }
}

fn smart_metadata_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let endpoint = |what: &str| {
        schemars::json_schema!({
            "type": "string",
            "description": format!("The URL of the OAuth2 {what} endpoint."),
            "maxLength": patterns::SMART_ENDPOINT_URL_MAX,
            "pattern": patterns::SMART_ENDPOINT_URL,
        })
    };
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": [
            "authorization_endpoint",
            "token_endpoint",
            "grant_types_supported",
            "capabilities",
            "code_challenge_methods_supported",
        ],
        "properties": {
            "authorization_endpoint": endpoint("authorization"),
            "token_endpoint": endpoint("token"),
            "grant_types_supported": {
                "type": "array",
                "description": "Grant types the token endpoint supports: authorization_code and/or client_credentials.",
                "minItems": 1,
                "maxItems": 2,
                "items": {"type": "string", "enum": ["authorization_code", "client_credentials"]},
            },
            "capabilities": {
                "type": "array",
                "description": "SMART capabilities the authorization server supports, such as launch-standalone.",
                "maxItems": 64,
                "items": {"type": "string", "maxLength": 128},
            },
            "code_challenge_methods_supported": {
                "type": "array",
                "description": "PKCE code challenge methods; HealthLake requires S256.",
                "maxItems": 8,
                "items": {"type": "string", "maxLength": 32},
                "x-kubernetes-validations": [{
                    "rule": "self.exists(method, method == 'S256')",
                    "message": "code_challenge_methods_supported must include S256: HealthLake only accepts PKCE with S256",
                }],
            },
        },
    })
}

/// How clients of a datastore authenticate.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum AuthorizationStrategy {
    /// SMART on FHIR v1 scopes.
    #[serde(rename = "SMART_ON_FHIR_V1")]
    SmartOnFhirV1,
    /// SMART on FHIR v1 and v2 scopes.
    #[serde(rename = "SMART_ON_FHIR")]
    SmartOnFhir,
    /// AWS SigV4 only, not affiliated with SMART on FHIR.
    #[serde(rename = "AWS_AUTH")]
    AwsAuth,
}

/// What deleting the Kubernetes object does to the datastore in AWS.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the datastore and its data; the object goes once AWS confirms.
    Delete,
    /// Leave the datastore in AWS untouched.
    Retain,
}

open_enum! {
    /// The status of a datastore, as AWS reports it.
    pub enum DatastoreStatus {
        /// Being created; this takes AWS 20 to 30 minutes.
        Creating => "CREATING",
        /// Ready for use.
        Active => "ACTIVE",
        /// Being deleted.
        Deleting => "DELETING",
        /// Deleted.
        Deleted => "DELETED",
        /// Creation failed; see `errorCause`.
        CreateFailed => "CREATE_FAILED",
    }
}

/// What the operator last observed of the datastore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FHIRDatastoreStatus {
    /// The datastore's id in HealthLake, saved the moment AWS returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore_id: Option<String>,
    /// The datastore's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore_arn: Option<String>,
    /// The datastore's FHIR endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore_endpoint: Option<String>,
    /// The datastore's name in HealthLake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore_name: Option<String>,
    /// `CREATING`, `ACTIVE`, `DELETING`, `DELETED` or `CREATE_FAILED`; values AWS adds later
    /// are shown as AWS sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore_status: Option<DatastoreStatus>,
    /// The region the datastore lives in, never changed whatever the operator's default region
    /// becomes: pinned before the first AWS call (in the `healthlake.fhir-operator.io/region`
    /// annotation) and copied here by the first status write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The deletion policy in force: `spec.deletionPolicy`, else `Delete` for a datastore the
    /// operator created and `Retain` for an adopted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// Tag keys the operator set on the datastore from `spec.tags`. On an adopted datastore these
    /// are the only keys the operator ever removes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_tags: Option<Vec<String>>,
    /// When AWS created the datastore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// Why the last create or delete failed, as AWS reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_cause: Option<ErrorCause>,
    /// Tags AWS reported on the datastore at the last sync, the operator's own and AWS's included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// The identity provider settings AWS reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<IdentityProviderStatus>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, as kstatus defines them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The identity provider settings AWS reports for a datastore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderStatus {
    /// The authorization strategy in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_strategy: Option<String>,
    /// Whether SMART on FHIR fine-grained authorization is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_grained_authorization_enabled: Option<bool>,
    /// The Lambda function that decodes access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_lambda_arn: Option<String>,
}
