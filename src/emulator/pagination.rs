//! MaxResults and NextToken for the list operations.
//!
//! A token names the sequence number of the last item returned, so a page stays correct when
//! items are added between calls. It is opaque to clients: hex of `v1:<kind>:<sequence>`.

use serde_json::Value;

use super::wire::AwsError;

/// The page size when a request gives no MaxResults (a guess: AWS does not document it).
pub const DEFAULT_MAX_RESULTS: usize = 100;

fn encode(kind: &str, sequence: u64) -> String {
    format!("v1:{kind}:{sequence}")
        .bytes()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn decode(kind: &str, token: &str) -> Option<u64> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|start| {
            token
                .get(start..start + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let rest = text
        .strip_prefix("v1:")?
        .strip_prefix(kind)?
        .strip_prefix(':')?;
    rest.parse().ok()
}

/// One page of `items` (sorted by sequence), after the token's position. Items are taken
/// from the iterator only up to one past the page, so lazily built items cost only the page.
pub fn paginate(
    kind: &str,
    items: impl IntoIterator<Item = (u64, Value)>,
    max_results: Option<i64>,
    next_token: Option<&str>,
) -> Result<(Vec<Value>, Option<String>), AwsError> {
    let after = match next_token.filter(|token| !token.is_empty()) {
        None => 0,
        Some(token) => {
            decode(kind, token).ok_or_else(|| AwsError::validation("Invalid pagination token"))?
        }
    };
    let limit = max_results
        .and_then(|value| usize::try_from(value).ok())
        .unwrap_or(DEFAULT_MAX_RESULTS)
        .max(1);
    let mut remaining = items.into_iter().filter(|(sequence, _)| *sequence > after);
    let page: Vec<(u64, Value)> = remaining.by_ref().take(limit).collect();
    let more = remaining.next().is_some();
    let token = match page.last() {
        Some((sequence, _)) if more => Some(encode(kind, *sequence)),
        _ => None,
    };
    Ok((page.into_iter().map(|(_, value)| value).collect(), token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_other_kinds() {
        let token = encode("datastores", 42);
        assert_eq!(decode("datastores", &token), Some(42));
        assert_eq!(decode("import-jobs", &token), None);
        assert_eq!(decode("datastores", "zz"), None);
    }

    #[test]
    fn pages_cover_every_item_once() {
        let items: Vec<(u64, Value)> = (1..=7).map(|n| (n, Value::from(n))).collect();
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let (page, next) =
                paginate("x", items.clone(), Some(3), token.as_deref()).unwrap_or_default();
            seen.extend(page);
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, (1..=7).map(Value::from).collect::<Vec<_>>());
    }
}
