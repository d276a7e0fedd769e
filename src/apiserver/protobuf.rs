//! Just enough of Kubernetes' protobuf encoding to read the Namespace that `kubectl create
//! namespace` sends (typed clients send protobuf for built-in kinds); anything else is refused.

use serde_json::{Map, Value, json};

/// The four bytes in front of every Kubernetes protobuf message.
const MAGIC: &[u8] = b"k8s\0";

/// One field of a protobuf message: its number and its value.
enum Field<'a> {
    /// A length-delimited value: a string, bytes or an embedded message.
    Bytes(&'a [u8]),
    /// A number, which nothing read here needs.
    Number,
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of a message, in order, or `None` if the bytes are not a well-formed message.
fn fields(mut input: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut fields = Vec::new();
    while !input.is_empty() {
        let key = read_varint(&mut input)?;
        let field = match key & 7 {
            0 => {
                read_varint(&mut input)?;
                Field::Number
            }
            1 => {
                input = input.get(8..)?;
                Field::Number
            }
            2 => {
                let length = usize::try_from(read_varint(&mut input)?).ok()?;
                let (bytes, rest) = (input.get(..length)?, input.get(length..)?);
                input = rest;
                Field::Bytes(bytes)
            }
            5 => {
                input = input.get(4..)?;
                Field::Number
            }
            _ => return None,
        };
        fields.push((key >> 3, field));
    }
    Some(fields)
}

fn text(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

fn string_map(entries: &[&[u8]]) -> Option<Value> {
    let mut map = Map::new();
    for entry in entries {
        let mut key = String::new();
        let mut value = String::new();
        for (number, field) in fields(entry)? {
            match (number, field) {
                (1, Field::Bytes(bytes)) => key = text(bytes)?,
                (2, Field::Bytes(bytes)) => value = text(bytes)?,
                _ => {}
            }
        }
        map.insert(key, Value::String(value));
    }
    Some(Value::Object(map))
}

/// The parts of ObjectMeta a client sets on create.
fn object_meta(bytes: &[u8]) -> Option<Value> {
    let mut metadata = Map::new();
    let mut labels = Vec::new();
    let mut annotations = Vec::new();
    let mut finalizers = Vec::new();
    for (number, field) in fields(bytes)? {
        let Field::Bytes(bytes) = field else {
            continue;
        };
        match number {
            1 => {
                metadata.insert("name".into(), Value::String(text(bytes)?));
            }
            2 => {
                metadata.insert("generateName".into(), Value::String(text(bytes)?));
            }
            3 => {
                metadata.insert("namespace".into(), Value::String(text(bytes)?));
            }
            11 => labels.push(bytes),
            12 => annotations.push(bytes),
            14 => finalizers.push(Value::String(text(bytes)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        metadata.insert("labels".into(), string_map(&labels)?);
    }
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), string_map(&annotations)?);
    }
    if !finalizers.is_empty() {
        metadata.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(metadata))
}

/// Reads a protobuf-encoded `v1` Namespace into its JSON form; `None` for anything else.
pub fn decode_namespace(body: &[u8]) -> Option<Value> {
    let envelope = body.strip_prefix(MAGIC)?;
    let mut kind = String::new();
    let mut api_version = String::new();
    let mut raw: &[u8] = &[];
    for (number, field) in fields(envelope)? {
        match (number, field) {
            (1, Field::Bytes(type_meta)) => {
                for (number, field) in fields(type_meta)? {
                    match (number, field) {
                        (1, Field::Bytes(bytes)) => api_version = text(bytes)?,
                        (2, Field::Bytes(bytes)) => kind = text(bytes)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(bytes)) => raw = bytes,
            _ => {}
        }
    }
    if kind != "Namespace" || api_version != "v1" {
        return None;
    }
    let mut namespace = json!({"apiVersion": "v1", "kind": "Namespace"});
    for (number, field) in fields(raw)? {
        match (number, field) {
            (1, Field::Bytes(bytes)) => namespace["metadata"] = object_meta(bytes)?,
            (2, Field::Bytes(spec)) => {
                let finalizers: Option<Vec<Value>> = fields(spec)?
                    .into_iter()
                    .filter_map(|(number, field)| match (number, field) {
                        (1, Field::Bytes(bytes)) => Some(text(bytes).map(Value::String)),
                        _ => None,
                    })
                    .collect();
                namespace["spec"] = json!({"finalizers": finalizers?});
            }
            _ => {}
        }
    }
    Some(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn length_delimited(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![
            u8::try_from(number << 3 | 2).unwrap(),
            u8::try_from(bytes.len()).unwrap(),
        ];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_namespace_from_kubectl_create_namespace_is_read() {
        let label = [
            length_delimited(1, b"team"),
            length_delimited(2, b"clinical"),
        ]
        .concat();
        let metadata = [
            length_delimited(1, b"clinical-data"),
            length_delimited(11, &label),
        ]
        .concat();
        let namespace = length_delimited(1, &metadata);
        let type_meta = [
            length_delimited(1, b"v1"),
            length_delimited(2, b"Namespace"),
        ]
        .concat();
        let envelope = [
            length_delimited(1, &type_meta),
            length_delimited(2, &namespace),
        ]
        .concat();
        let body = [MAGIC, envelope.as_slice()].concat();
        let decoded = decode_namespace(&body).unwrap();
        assert_eq!(decoded["metadata"]["name"], "clinical-data");
        assert_eq!(decoded["metadata"]["labels"]["team"], "clinical");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_are_refused_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode_namespace(&[MAGIC, bytes.as_slice()].concat());
        }
    }
}
