//! Just enough of the Kubernetes protobuf encoding to read a TokenRequest:
//! kubectl's typed clients (`kubectl create token`) send bodies as
//! `application/vnd.kubernetes.protobuf`, never JSON.

const MAGIC: &[u8] = b"k8s\0";

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

fn varint(bytes: &[u8], position: &mut usize) -> Result<u64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes
            .get(*position)
            .ok_or("truncated varint in protobuf body")?;
        *position += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("overlong varint in protobuf body".to_owned())
}

/// The fields of one message, in wire order.
fn fields(bytes: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut found = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let key = varint(bytes, &mut position)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(bytes, &mut position)?),
            1 | 5 => {
                position += if key & 7 == 1 { 8 } else { 4 };
                Field::Other
            }
            2 => {
                let length = usize::try_from(varint(bytes, &mut position)?)
                    .map_err(|_| "length out of range in protobuf body")?;
                let end = position
                    .checked_add(length)
                    .filter(|end| *end <= bytes.len())
                    .ok_or("truncated field in protobuf body")?;
                let slice = &bytes[position..end];
                position = end;
                Field::Bytes(slice)
            }
            wire => return Err(format!("unsupported protobuf wire type {wire}")),
        };
        found.push((key >> 3, field));
    }
    if position > bytes.len() {
        return Err("truncated field in protobuf body".to_owned());
    }
    Ok(found)
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a protobuf string is not UTF-8".to_owned())
}

/// `(kind, spec.audiences, spec.expirationSeconds)` from a `runtime.Unknown`
/// envelope around an `authentication.k8s.io/v1` TokenRequest.
pub fn token_request(body: &[u8]) -> Result<(String, Vec<String>, Option<i64>), String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("protobuf body lacks the k8s envelope prefix")?;
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (number, field) in fields(envelope)? {
        match (number, field) {
            (1, Field::Bytes(type_meta)) => {
                for (number, field) in fields(type_meta)? {
                    if let (2, Field::Bytes(k)) = (number, field) {
                        kind = text(k)?;
                    }
                }
            }
            (2, Field::Bytes(bytes)) => raw = bytes,
            _ => {}
        }
    }
    let mut audiences = Vec::new();
    let mut expiration = None;
    for (number, field) in fields(raw)? {
        if let (2, Field::Bytes(spec)) = (number, field) {
            for (number, field) in fields(spec)? {
                match (number, field) {
                    (1, Field::Bytes(audience)) => audiences.push(text(audience)?),
                    // int64 travels as its two's-complement bits.
                    (4, Field::Varint(seconds)) => expiration = Some(seconds.cast_signed()),
                    _ => {}
                }
            }
        }
    }
    Ok((kind, audiences, expiration))
}

#[cfg(test)]
mod tests {
    use super::token_request;

    #[test]
    fn reads_what_kubectl_create_token_sends() {
        let body = b"k8s\x00\n(\n\x18authentication.k8s.io/v1\x12\x0cTokenRequest\x129\n\x10\n\x00\x12\x00\x1a\x00\"\x00*\x002\x008\x00B\x00\x12\x1f\n\x1aapi://AzureADTokenExchange \x90\x1c\x1a\x04\n\x00\x12\x00\x1a\x00\"\x00";
        let (kind, audiences, expiration) = token_request(body).unwrap();
        assert_eq!(kind, "TokenRequest");
        assert_eq!(audiences, vec!["api://AzureADTokenExchange".to_owned()]);
        assert_eq!(expiration, Some(3600));
    }

    #[test]
    fn rejects_truncated_bodies() {
        assert!(token_request(b"k8s\x00\n\x28\n").is_err());
        assert!(token_request(b"{}").is_err());
    }
}
