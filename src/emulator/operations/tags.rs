//! TagResource, UntagResource, ListTagsForResource, and the tag lists of CreateFHIRDatastore.

use serde_json::{Value, json};

use super::Context;
use crate::emulator::validate::{Members, RESOURCE_ARN, TAG_KEY, TAG_VALUE};
use crate::emulator::wire::AwsError;

/// AWS's limit of tags per resource (the model allows 200 per call; AWS allows 50 in all).
pub const MAX_TAGS_PER_RESOURCE: usize = 50;

/// Refuses a tag key with the prefix `aws:`, which only AWS sets (TagResource,
/// UntagResource and CreateFHIRDatastore alike).
fn check_user_tag_key(key: &str) -> Result<(), AwsError> {
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(AwsError::validation(format!(
            "Tag key {key} uses the reserved prefix aws:"
        )));
    }
    Ok(())
}

/// Reads a `TagList` member as (key, value) pairs.
pub fn read_tags(
    request: &Members<'_>,
    name: &str,
    required: bool,
) -> Result<Option<Vec<(String, String)>>, AwsError> {
    let Some(items) = request.list(name, 0, 200, required)? else {
        return Ok(None);
    };
    let mut tags = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let tag = request.element(name, index, item)?;
        let key = tag.string("Key", &TAG_KEY, true)?.unwrap_or_default();
        let value = tag.string("Value", &TAG_VALUE, true)?.unwrap_or_default();
        check_user_tag_key(&key)?;
        if tags.iter().any(|(existing, _)| *existing == key) {
            return Err(AwsError::validation(format!("Duplicate tag key {key}")));
        }
        tags.push((key, value));
    }
    Ok(Some(tags))
}

/// The datastore id an ARN names, when the datastore exists in this account and region.
fn resolve(context: &Context<'_>, arn: &str) -> Result<String, AwsError> {
    let not_found = || AwsError::not_found(format!("Resource {arn} was not found"));
    let id = arn
        .strip_prefix(&format!(
            "arn:aws:healthlake:{}:{}:datastore/fhir/",
            context.region, context.config.account_id
        ))
        .ok_or_else(not_found)?;
    if context.state.datastores.contains_key(id) {
        Ok(id.to_string())
    } else {
        Err(not_found())
    }
}

fn read_arn(request: &Members<'_>) -> Result<String, AwsError> {
    Ok(request
        .string("ResourceARN", &RESOURCE_ARN, true)?
        .unwrap_or_default())
}

/// `TagResource`.
pub fn tag(context: &mut Context<'_>, body: &Value) -> Result<Value, AwsError> {
    let request = Members::of_request(body)?;
    let arn = read_arn(&request)?;
    let tags = read_tags(&request, "Tags", true)?.unwrap_or_default();
    let id = resolve(context, &arn)?;
    if let Some(datastore) = context.state.datastores.get_mut(&id) {
        let mut merged = datastore.tags.clone();
        merged.extend(tags);
        if merged.len() > MAX_TAGS_PER_RESOURCE {
            return Err(AwsError::validation(format!(
                "A resource can have at most {MAX_TAGS_PER_RESOURCE} tags"
            )));
        }
        datastore.tags = merged;
    }
    Ok(json!({}))
}

/// `UntagResource`.
pub fn untag(context: &mut Context<'_>, body: &Value) -> Result<Value, AwsError> {
    let request = Members::of_request(body)?;
    let arn = read_arn(&request)?;
    let items = request.list("TagKeys", 0, 200, true)?.unwrap_or_default();
    let mut keys = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let key = request.string_element("TagKeys", index, item, &TAG_KEY)?;
        check_user_tag_key(&key)?;
        keys.push(key);
    }
    let id = resolve(context, &arn)?;
    if let Some(datastore) = context.state.datastores.get_mut(&id) {
        for key in keys {
            datastore.tags.remove(&key);
        }
    }
    Ok(json!({}))
}

/// `ListTagsForResource`.
pub fn list(context: &mut Context<'_>, body: &Value) -> Result<Value, AwsError> {
    let request = Members::of_request(body)?;
    let arn = read_arn(&request)?;
    let id = resolve(context, &arn)?;
    let tags: Vec<Value> = context
        .state
        .datastores
        .get(&id)
        .map(|datastore| {
            datastore
                .tags
                .iter()
                .map(|(key, value)| json!({"Key": key, "Value": value}))
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({ "Tags": tags }))
}
